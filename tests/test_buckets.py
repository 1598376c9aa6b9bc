"""Checksum buckets: names, ranges that cover every checksum once, and the atlas's auto split."""

import duckdb
import pytest

from foldatlas.buckets import SEQUENCES_PER_ATLAS_BUCKET, WHOLE, atlas_bucket_digits, bucket_bounds, bucket_names, bucket_of, bucket_where
from foldatlas.fasta import sequence_checksum


def test_bucket_names_cover_every_prefix_once():
    assert bucket_names(0) == [WHOLE]
    assert bucket_names(1) == list("0123456789abcdef")
    assert len(bucket_names(2)) == 256 and bucket_names(2)[:2] == ["00", "01"] and bucket_names(2)[-1] == "ff"
    with pytest.raises(ValueError, match="expected 0 to 2 bucket digits, found 3"):
        bucket_names(3)


@pytest.mark.parametrize("bad", ["A", "0g", "000", "", "0a'; DROP TABLE x; --"])
def test_a_bucket_that_is_no_hex_prefix_is_refused(bad):
    with pytest.raises(ValueError, match="expected a checksum bucket"):
        bucket_where("checksum", bad)


@pytest.mark.parametrize("digits", [1, 2])
def test_every_checksum_and_every_null_is_in_exactly_one_bucket(digits):
    sums = [sequence_checksum(f"MK{i}".encode()) for i in range(2000)] + ["0" * 32, "f" * 32, None]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (checksum VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[s] for s in sums])
    seen: dict = {}
    for b in bucket_names(digits):
        for (c,) in con.execute(f"SELECT checksum FROM t WHERE {bucket_where('checksum', b, nulls=True)}").fetchall():
            assert c not in seen, (c, b, seen.get(c))
            seen[c] = b
            assert c is None and set(b) == {"0"} or c is not None and bucket_of(c, digits) == b and bucket_bounds(b)[0] <= c < bucket_bounds(b)[1]
    assert set(seen) == set(sums)
    # without nulls=True a record without a checksum is in no bucket
    assert all(con.execute(f"SELECT count(*) FROM t WHERE checksum IS NULL AND {bucket_where('checksum', b)}").fetchall()[0][0] == 0 for b in bucket_names(digits))


def test_auto_splits_the_atlas_by_its_unique_sequences():
    per = SEQUENCES_PER_ATLAS_BUCKET
    assert [atlas_bucket_digits("auto", n) for n in (0, per, per + 1, 16 * per, 16 * per + 1, 10**9)] == [0, 0, 1, 1, 2, 2]
    assert atlas_bucket_digits(1, 5) == 1 and atlas_bucket_digits(0, 10**9) == 0
    with pytest.raises(ValueError):
        atlas_bucket_digits(3, 5)


def test_members_are_seen_from_the_footer_alone(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from foldatlas.buckets import has_members

    none = pa.table({"checksum": ["a", "b"], "representative": pa.nulls(2, pa.string())})
    some = pa.table({"checksum": ["a", "b"], "representative": [None, "a"]})
    for name, t, want in (("none", none, False), ("some", some, True)):
        pq.write_table(t, tmp_path / f"{name}.parquet", row_group_size=1)
        assert has_members(pq.read_metadata(tmp_path / f"{name}.parquet")) is want
    pq.write_table(some, tmp_path / "nostats.parquet", write_statistics=False)
    assert has_members(pq.read_metadata(tmp_path / "nostats.parquet")) is True  # unknown: assume members
