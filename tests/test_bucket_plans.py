"""Planning one checksum bucket a job (ingest.bucket_digits): the joined plan is the plan
one job makes, and the independent counts still hold over all buckets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import chunk_settings, write_fasta
from foldatlas.bucket_plans import chunk_digits, number_bucket_plans, plan_bucket
from foldatlas.buckets import bucket_names
from foldatlas.chunking import plan_release_chunks, read_plan
from foldatlas.config import validate_config
from foldatlas.errors import AccountingError, ConfigError, InternalError, StaleOutputError
from foldatlas.ingest import bucket_part, read_fasta_file
from foldatlas.layout import RELEASE_FILE, Layout
from foldatlas.settings import IngestSettings
from foldatlas.store import publish_release
from test_atlas import make_chunk
from test_store import KEY, SEQS, planned, release1, write_inputs, write_sequences  # noqa: F401 - release1: a fixture

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _inputs(tmp_path, n: int = 300):
    """Two files: random sequences, some repeated within and across files, an invalid
    record, an empty one and a too-short one."""
    rng = np.random.default_rng(11)
    uniq = ["".join(rng.choice(AA, rng.integers(20, 200))) for _ in range(n)]
    a = [(f"a{i}", s) for i, s in enumerate(uniq[: n // 2])] + [("bad", "MK*LV" * 5), ("short", "MKV"), ("a-dup", uniq[3])]
    b = [(f"b{i}", s) for i, s in enumerate(uniq[n // 2 :])] + [("empty", ""), *[(f"b-dup{i}", uniq[i]) for i in range(0, n, 7)]]
    return [write_fasta(tmp_path / "a.fa", a), write_fasta(tmp_path / "b.fa", b)]


def _read(paths, tmp_path, digits: int):
    parts, counts = [], []
    for k, path in enumerate(paths):
        parts.append(tmp_path / f"parts{digits}" / (f"{k}.buckets" if digits else f"{k}.parquet"))
        counts.append(tmp_path / f"parts{digits}" / f"{k}.count.json")
        read_fasta_file(path, parts[-1], source=path.name, source_index=k, settings=IngestSettings.from_config({}), workers=1, count_out=counts[-1], digits=digits)
    return parts, counts


def _bucketed(tmp_path, parts, counts, store, settings, digits: int, name: str = "bucketed"):
    out = tmp_path / name
    folders = []
    for b in bucket_names(digits):
        folders.append(out / "buckets" / b)
        plan_bucket(b, parts, store=store, release="", outputs_key=KEY, out=folders[-1], settings=settings, ingest_digits=digits, memory_gb=0.5, scratch_dir=tmp_path / "scratch")
    plans = number_bucket_plans(folders, store=store, release="", outputs_key=KEY, counts=counts, records_out=out / "records.parquet",
                                sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks", inputs_out=out / "inputs.json")  # fmt: skip
    return out, plans, folders


def _one_job(tmp_path, parts, counts, store, settings, name: str = "one"):
    out = tmp_path / name
    plans = plan_release_chunks(parts, store=store, release="", outputs_key=KEY, records_out=out / "records.parquet", sequences_out=out / "sequences.parquet",
                                chunks_dir=out / "chunks", settings=settings, memory_gb=0.5, scratch_dir=tmp_path / "scratch", counts=counts, inputs_out=out / "inputs.json")  # fmt: skip
    return out, plans


def _same_plan(one, bucketed):
    """Both folders hold the same plan: plan.tsv, release.json, chunk files, sequences,
    inputs; records the same rows (bucketed: in bucket order, then input order)."""
    assert read_plan(one / "chunks/plan.tsv") == read_plan(bucketed / "chunks/plan.tsv")
    assert json.loads((one / "chunks" / RELEASE_FILE).read_text()) == json.loads((bucketed / "chunks" / RELEASE_FILE).read_text())
    names = sorted(p.name for p in (one / "chunks").glob("chunk_*.parquet"))
    assert names == sorted(p.name for p in (bucketed / "chunks").glob("chunk_*.parquet")) and names
    for n in names:
        assert pq.read_table(one / "chunks" / n).equals(pq.read_table(bucketed / "chunks" / n)), n
    assert pq.read_table(one / "sequences.parquet").equals(pq.read_table(bucketed / "sequences.parquet"))
    assert (one / "inputs.json").read_text() == (bucketed / "inputs.json").read_text()
    records = pq.read_table(bucketed / "records.parquet")
    assert pq.read_table(one / "records.parquet").equals(records.sort_by([("source_index", "ascending"), ("record_index", "ascending")]))
    return records


@pytest.mark.parametrize("digits", [1, 2])
def test_planning_bucket_by_bucket_makes_the_plan_of_one_job(tmp_path, digits):
    paths = _inputs(tmp_path)
    flat = _read(paths, tmp_path, 0)
    split = _read(paths, tmp_path, digits)
    settings = chunk_settings(6.0, 25)
    one, plans = _one_job(tmp_path, *flat, Layout(tmp_path / "s1").store("f" * 16), chunk_settings(6.0, 25, bucket_digits=digits))
    out, numbered, _ = _bucketed(tmp_path, *split, Layout(tmp_path / "s2").store("f" * 16), settings, digits)
    assert numbered == read_plan(one / "chunks/plan.tsv") and len(plans) > 16**digits // 2
    records = _same_plan(one, out)
    # records in bucket order (a record without a checksum in the first), then input order
    order = [(c[:digits] if c else "0" * digits, s, i) for c, s, i in zip(*(records[k].to_pylist() for k in ("checksum", "source_index", "record_index")))]
    assert order == sorted(order)
    assert {"duplicate", "invalid_characters", "too_short", "empty"} <= set(records["status"].to_pylist())


def test_a_bucketed_plan_leaves_out_what_the_store_holds_and_numbers_after_it(release1):  # noqa: F811
    """Release r0002 over SEQS (six of them in r0001's chunks 0 and 1), planned in 16
    buckets: the same plan as one job's, chunks from 2, the known keep chunk and release."""
    tmp, store, _ = release1
    fa = write_fasta(tmp / "ab.fa", [(f"s{i}", s) for i, s in enumerate(SEQS)])
    shutil.copytree(tmp / "results", tmp / "copy")  # the one job reserves its chunks in its store
    one, plans = _one_job(tmp, *_read([fa], tmp, 0), store, chunk_settings(30.0, 2, bucket_digits=1))
    out, numbered, _ = _bucketed(tmp, *_read([fa], tmp, 1), Layout(tmp / "copy").store(store.fingerprint), chunk_settings(30.0, 2), 1)
    assert numbered == read_plan(one / "chunks/plan.tsv") and [p.chunk for p in plans] == list(range(2, 2 + len(plans))) and sum(p.n_sequences for p in plans) == 6
    _same_plan(one, out)
    seqs = pq.read_table(out / "sequences.parquet").to_pylist()
    assert sorted((r["release"], r["chunk"] < 2) for r in seqs) == [("r0001", True)] * 6 + [("r0002", False)] * 6


def _planned_buckets(tmp_path, n: int = 60):
    """16 bucket plans of two small files on a fresh store, not yet numbered."""
    parts, counts = _read(_inputs(tmp_path, n), tmp_path, 1)
    store = Layout(tmp_path / "s").store("f" * 16)
    out = tmp_path / "plan"
    folders = [out / "buckets" / b for b in bucket_names(1)]
    for b, folder in zip(bucket_names(1), folders):
        plan_bucket(b, parts, store=store, release="", outputs_key=KEY, out=folder, settings=chunk_settings(6.0, 25), ingest_digits=1, memory_gb=0.5)
    return store, out, folders, counts


def _number(store, out, folders, counts):
    return number_bucket_plans(folders, store=store, release="", outputs_key=KEY, counts=counts, records_out=out / "records.parquet",
                               sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks", inputs_out=out / "inputs.json")  # fmt: skip


def _nothing_written(out):
    return not any((out / n).exists() for n in ("records.parquet", "sequences.parquet", "chunks", "inputs.json"))


def _victim(folders):
    """A bucket with at least two records, and its records."""
    victim = next(f for f in folders if pq.ParquetFile(f / "records.parquet").metadata.num_rows > 1)
    return victim, pq.read_table(victim / "records.parquet")


def test_a_record_lost_in_a_bucket_fails_the_independent_count(tmp_path):
    store, out, folders, counts = _planned_buckets(tmp_path)
    victim, table = _victim(folders)
    pq.write_table(table.slice(1), victim / "records.parquet")
    lost, k = table["source"][0].as_py(), table["source_index"][0].as_py()
    n = json.loads(counts[k].read_text())["records"]
    with pytest.raises(AccountingError, match=f"{lost}: the input holds {n} records .*, the plan of all buckets has {n - 1}$"):
        _number(store, out, folders, counts)
    assert _nothing_written(out)


def test_a_record_lost_and_another_doubled_fails_the_keys(tmp_path):
    """The count per file holds; the keys' power sums do not."""
    store, out, folders, counts = _planned_buckets(tmp_path)
    victim, table = next((f, t) for f in folders if len(set((t := pq.read_table(f / "records.parquet"))["source_index"].to_pylist()[:2])) == 1 and t.num_rows > 1)
    # the second record (same file as the first) replaced by a copy of the first
    pq.write_table(pa.concat_tables([table.slice(0, 1), table.slice(0, 1), table.slice(2)]), victim / "records.parquet")
    with pytest.raises(AccountingError, match=f"{table['source'][0].as_py()}: expected its .* records numbered 0..* each once"):
        _number(store, out, folders, counts)
    assert _nothing_written(out)


def test_a_record_in_the_wrong_bucket_is_refused(tmp_path):
    store, out, folders, counts = _planned_buckets(tmp_path)
    a, b = [f for f in folders if pq.ParquetFile(f / "records.parquet").metadata.num_rows > 1][:2]
    ta, tb = pq.read_table(a / "records.parquet"), pq.read_table(b / "records.parquet")
    pq.write_table(pa.concat_tables([ta, tb.slice(0, 1)]).sort_by("checksum"), a / "records.parquet")
    pq.write_table(tb.slice(1), b / "records.parquet")
    with pytest.raises(InternalError, match=f"records.parquet: expected checksums of bucket {a.name} only, found checksums starting with"):
        _number(store, out, folders, counts)


def test_buckets_planned_before_another_run_published_are_planned_again(tmp_path):
    """Another run publishes a release between the bucket jobs and the numbering: the
    buckets' anti-join is out of date. Refused, and the bucket plans removed so that
    the next run plans them again; no bucket job writes the store's key.json."""
    store, out, folders, counts = _planned_buckets(tmp_path)
    assert not store.key.exists(), "bucket jobs only read key.json (16 or 256 run side by side)"
    make_chunk(store.dir / "chunks", 0, SEQS[:3])
    seqs = write_sequences(tmp_path / "seq.parquet", SEQS[:3], [0, 0, 0], ["r0001"] * 3)
    publish_release(store, planned=planned(tmp_path, store, "", [0]), sequences=seqs, inputs=write_inputs(tmp_path / "in.json", {"x.fa": 3}), receipt=tmp_path / "receipt.json")
    with pytest.raises(StaleOutputError, match="expected bucket plans made against the store as it is now \\(release r0002, generation 1\\), found 16 made against release r0001, generation 0"):
        _number(store, out, folders, counts)
    assert not any(f.exists() for f in folders) and _nothing_written(out)


def test_bucket_parts_are_the_same_however_often_they_are_flushed(tmp_path, monkeypatch):
    import foldatlas.ingest as ingest

    paths = _inputs(tmp_path, 200)
    (whole,), _ = _read(paths[:1], tmp_path / "whole", 1)
    monkeypatch.setattr(ingest, "_BUCKET_BUFFER_BYTES", 1)  # a row group per bucket and batch
    (flushed,), _ = _read(paths[:1], tmp_path / "flushed", 1)
    for b in bucket_names(1):
        assert pq.read_table(bucket_part(whole, b)).equals(pq.read_table(bucket_part(flushed, b)))
    assert sum(pq.ParquetFile(bucket_part(flushed, b)).metadata.num_row_groups for b in bucket_names(1)) >= 16


def test_each_bucket_part_holds_its_bucket_in_file_order(tmp_path):
    paths = _inputs(tmp_path, 80)
    (part,), _ = _read(paths[:1], tmp_path, 1)
    files = sorted(p.name for p in part.iterdir())
    assert files == [f"{b}.parquet" for b in bucket_names(1)], "every bucket has its file, empty ones too"
    total = 0
    for b in bucket_names(1):
        t = pq.read_table(bucket_part(part, b))
        total += t.num_rows
        assert {(c or "0")[0] for c in t["checksum"].to_pylist()} <= {b}, "records without a checksum go to the first bucket"
        assert t["record_index"].to_pylist() == sorted(t["record_index"].to_pylist())
    assert total == sum(1 for line in paths[0].read_text().splitlines() if line.startswith(">"))


def test_bucket_digits_of_the_chunks_and_the_redundancy_they_exclude():
    assert [chunk_digits("auto", 1), chunk_digits(0, 1), chunk_digits(2, 1), chunk_digits(1, 2)] == [1, 1, 2, 2]
    message = "'ingest.bucket_digits' = 1 and 'ingest.redundancy' = 'cluster90': expected bucket_digits 0"
    with pytest.raises(ConfigError, match=message):
        IngestSettings.from_config({"bucket_digits": 1, "redundancy": "cluster90"})
    with pytest.raises(ConfigError, match=message):  # at start-up, with every other problem
        validate_config({"input": {"fasta": ["x.fa"]}, "ingest": {"bucket_digits": 1, "redundancy": "cluster90"}})
