"""atlas.bins: every structure of an atlas, once, in shards per ESM Atlas bin, that GNU
tar and Python's tarfile (seeking and streaming) read whole, copied byte for byte from
the atlas's shards or straight from the fold archives (the same bytes either way), with
an index that DuckDB reads as one table; the finish counts and prunes them."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from foldatlas import duck
from foldatlas.archive import read_member
from foldatlas.atlas import finish_atlas
from foldatlas.bins import repack_bins
from foldatlas.buckets import bucket_names
from foldatlas.errors import StaleOutputError
from foldatlas.layout import AtlasOutputs
from foldatlas.settings import FilterSettings
from test_atlas import SEQS, make_chunk, split_assembly, write_ingest

DIGITS = 1


def _atlas(tmp: Path, name: str, **atlas) -> tuple[AtlasOutputs, dict[str, Path]]:  # type: ignore[no-untyped-def]
    """An atlas of 10 structures (PDB and ModelCIF members) in 16 buckets, then its bins
    (2 structures a shard)."""
    chunks = [make_chunk(tmp / "fold", 0, SEQS[:5], formats=("pdb", "cif")), make_chunk(tmp / "fold", 1, SEQS[5:], formats=("pdb", "cif"))]
    write_ingest(tmp, SEQS, [0] * 5 + [1] * 5)
    out, _ = split_assembly(tmp, chunks, DIGITS, tmp / name, formats=("pdb", "cif"), **atlas)
    parts = {b: tmp / name / "parts" / f"{b}.json" for b in bucket_names(DIGITS)}
    for b in bucket_names(DIGITS):
        repack_bins(bucket=b, index=out.part(out.index, b), predictions=tmp / name / "parts" / f"{b}.predictions.parquet", atlas_root=out.root,
                    out_dir=out.bin_shards(b), index_out=out.part(out.bins_index, b), shard_size=2, scratch_dir=tmp / name / "scratch")  # fmt: skip
    return out, parts


def _finish(tmp: Path, out: AtlasOutputs, parts: dict[str, Path], bins: bool) -> dict:
    return finish_atlas(out, parts=parts, records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", inputs=tmp / "inputs.json",
                        filter=FilterSettings.from_config({}), bins=bins)  # fmt: skip


def test_bins_hold_every_structure_once_in_its_atlas_bin(tmp_path):
    out, parts = _atlas(tmp_path, "copies", all_structures=True)
    con = duck.connect()
    index = con.execute(f"SELECT checksum, collection, archive, member, data_offset, data_length FROM read_parquet({duck.sql_path(out.index / '*.parquet')})").fetchall()
    bins = pq.read_table(out.bins_index).to_pylist()  # the folder, read as one table
    meta = {r["checksum"]: r["bin"] for r in pq.read_table(out.metadata, columns=["checksum", "bin"]).to_pylist()}
    assert sorted(r["checksum"] for r in bins) == sorted({r[0] for r in index}) and len(bins) == 10  # both collections, each structure once
    assert {r["collection"] for r in bins} == {"tm_.80_.90_plddt_.80_.90", "tm_.50_.60_plddt_.50_.60"}  # 0.9 as float32 is below .90
    source = {r[0]: read_member(out.root / r[2], r[4], r[5], expect=r[3]) for r in index}
    for r in bins:
        assert r["collection"] == meta[r["checksum"]] and r["high_confidence"] == r["collection"].startswith("tm_.80")
        assert r["archive"].startswith(f"bins/{r['checksum'][0]}/{r['collection']}_") and r["archive"].endswith(".tar")
        assert read_member(out.root / r["archive"], r["data_offset"], r["data_length"], expect=r["member"]) == source[r["checksum"]]
        assert read_member(out.root / r["archive"], r["cif_offset"], r["cif_length"], expect=r["cif_member"]).startswith(b"data_")
    shards = sorted(out.bins.glob("*/*.tar"))
    for shard in shards:
        rows = [r for r in bins if out.root / r["archive"] == shard]
        expected = sorted(m for r in rows for m in (r["member"], r["cif_member"]))
        gnu = subprocess.run(["tar", "tf", str(shard)], capture_output=True, text=True, check=True).stdout.split()
        with tarfile.open(shard, "r:") as tar:
            seek = [m.name for m in tar]
        with open(shard, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:  # a stream: no seeking back
            stream = [m.name for m in tar]
        assert sorted(gnu) == sorted(seek) == sorted(stream) == expected and 1 <= len(rows) <= 2, shard
    summary = _finish(tmp_path, out, parts, bins=True)
    assert summary["bins"] == {"tm_.50_.60_plddt_.50_.60": 4, "tm_.80_.90_plddt_.80_.90": 6}


def test_bins_from_the_fold_archives_are_those_from_the_copies(tmp_path):
    """Without copies (atlas.copy_structures: false) the index points into the fold
    archives: the bin shards made from there are the copies' bin shards byte for byte."""
    copies, _ = _atlas(tmp_path, "copies", all_structures=True)
    direct, _ = _atlas(tmp_path, "direct", all_structures=True, copy_structures=False)
    assert not list(direct.structures.rglob("*.tar"))
    made = {p.relative_to(direct.bins): p.read_bytes() for p in direct.bins.glob("*/*.tar")}
    assert made == {p.relative_to(copies.bins): p.read_bytes() for p in copies.bins.glob("*/*.tar")}
    assert len(made) == len(set(pq.read_table(direct.bins_index, columns=["archive"])["archive"].to_pylist())) >= 8


def test_the_finish_prunes_bins_of_another_split_and_removes_them_when_switched_off(tmp_path):
    out, parts = _atlas(tmp_path, "copies")
    (out.bins / "ab").mkdir()  # a two-digit split's bucket
    (out.bins_index / "ab.parquet").write_bytes(b"")
    _finish(tmp_path, out, parts, bins=True)
    assert not (out.bins / "ab").exists() and not (out.bins_index / "ab.parquet").exists()
    assert len(list(out.bins_index.iterdir())) == 16 and pq.read_table(out.bins_index).num_rows == 6
    summary = _finish(tmp_path, out, parts, bins=False)
    assert not out.bins.exists() and summary["bins"] is None


@pytest.mark.parametrize("how", ["no prediction", "stale entry"])
def test_a_bin_or_entry_that_disagrees_stops_the_repack(tmp_path, how):
    out, _ = _atlas(tmp_path, "copies")
    bucket = next(b for b in bucket_names(DIGITS) if pq.read_table(out.part(out.index, b)).num_rows)
    preds = tmp_path / "copies" / "parts" / f"{bucket}.predictions.parquet"
    index = out.part(out.index, bucket)
    if how == "no prediction":  # predictions of another run: the index's structures are not there
        t = pq.read_table(preds)
        pq.write_table(t.slice(0, 0), preds)
        expect = StaleOutputError
    else:
        t = pq.read_table(index)
        pq.write_table(t.set_column(t.schema.get_field_index("data_offset"), "data_offset", pa_shift(t["data_offset"])), index)
        expect = ValueError
    before = {p: p.read_bytes() for p in out.bin_shards(bucket).iterdir()}
    with pytest.raises(expect, match="found no prediction|stale index"):
        repack_bins(bucket=bucket, index=index, predictions=preds, atlas_root=out.root, out_dir=out.bin_shards(bucket), index_out=tmp_path / "x.parquet", shard_size=2, scratch_dir=tmp_path / "scratch")
    assert {p: p.read_bytes() for p in out.bin_shards(bucket).iterdir()} == before and not (tmp_path / "x.parquet").exists()  # nothing half-written


def pa_shift(col):  # type: ignore[no-untyped-def]
    import pyarrow.compute as pc

    return pc.add(col, 512)


@pytest.mark.parametrize("how", ["lost", "moved", "stray"])
def test_accounting_holds_with_bins_and_finds_what_they_lost(tmp_path, how):
    """check_bucket counts each bucket's bin shard entries against its index and its
    metadata's bins; the global check adds them up against summary.json."""
    import pyarrow.compute as pc

    from foldatlas.errors import AccountingError
    from test_atlas import _accounting

    out, parts = _atlas(tmp_path, "copies", all_structures=True)
    _finish(tmp_path, out, parts, bins=True)
    assert _accounting(tmp_path, out)["ok"] is True
    bucket = next(b for b in bucket_names(DIGITS) if pq.read_table(out.part(out.bins_index, b)).num_rows)
    path = out.part(out.bins_index, bucket)
    t = pq.read_table(path)
    if how == "lost":  # a structure dropped from the bins
        pq.write_table(t.slice(1), path)
        expect = "structures of its index are in no bin shard"
    elif how == "moved":  # a structure listed in another bin
        pq.write_table(t.set_column(t.schema.get_field_index("collection"), "collection", pc.binary_join_element_wise(t["collection"], "x", "")), path)
        expect = "not in the bin of their metadata"
    else:  # a leftover of another split beside the buckets
        (out.bins / "ab").mkdir()
        expect = "beside this atlas's buckets"
    with pytest.raises(AccountingError, match=expect):
        _accounting(tmp_path, out)


def test_representatives_only_members_point_at_and_nan_confidences_are_binned_and_accounted(tmp_path):
    """A representative whose own record is not in the inputs (only members of other
    buckets point at it) is binned by its own confidences, which the accounting takes from
    the members that carry them; a structure with a NaN pTM has no Atlas bin and goes to
    ``unbinned``, nothing lost."""
    from test_atlas import _accounting, _rewrite, orphan_representative

    chunks, _, rep = orphan_representative(tmp_path)
    nan = pq.read_table(chunks[1].predictions)["checksum"][1].as_py()
    _rewrite(chunks[1].predictions, lambda rs: [{**r, "ptm": float("nan")} if r["checksum"] == nan else r for r in rs])
    out, _ = split_assembly(tmp_path, chunks, DIGITS, tmp_path / "split", all_structures=True)
    for b in bucket_names(DIGITS):
        repack_bins(bucket=b, index=out.part(out.index, b), predictions=tmp_path / "split" / "parts" / f"{b}.predictions.parquet", atlas_root=out.root,
                    out_dir=out.bin_shards(b), index_out=out.part(out.bins_index, b), shard_size=2, scratch_dir=tmp_path / "scratch")  # fmt: skip
    parts = {b: tmp_path / "split" / "parts" / f"{b}.json" for b in bucket_names(DIGITS)}
    summary = _finish(tmp_path, out, parts, bins=True)
    rows = {r["checksum"]: r["collection"] for r in pq.read_table(out.bins_index).to_pylist()}
    assert rows[nan] == "unbinned" and summary["bins"]["unbinned"] == 1 and rows[rep] != "unbinned"
    assert len(rows) == len({r["checksum"] for r in pq.read_table(out.index).to_pylist()}) == 10
    assert _accounting(tmp_path, out)["ok"] is True
