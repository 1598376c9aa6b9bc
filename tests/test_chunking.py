"""Deduplication and chunk planning: accounting and balance."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import chunk_settings, read_part, write_fasta
from foldatlas.chunking import assign_chunks, chunk_content, plan_chunks, read_plan
from foldatlas.errors import StaleOutputError
from foldatlas.settings import CostModel


def test_assign_chunks_respects_budget_and_count():
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.1, 3.0, 1000)
    ids, _ = assign_chunks(costs, budget=20.0, max_sequences=15)
    assert np.all(np.diff(ids) >= 0) and ids[0] == 0
    assert set(np.unique(ids)) == set(range(ids[-1] + 1))  # no gaps
    for c in np.unique(ids):
        sel = costs[ids == c]
        assert sel.sum() <= 20.0 + 1e-9 and len(sel) <= 15
    # greedy: adding the next item would overflow one of the limits
    for c in range(ids[-1]):
        sel = costs[ids == c]
        nxt = costs[np.argmax(ids == c + 1)]
        assert sel.sum() + nxt > 20.0 or len(sel) == 15


def test_assign_chunks_streaming_equals_one_pass():
    rng = np.random.default_rng(1)
    costs = rng.uniform(0.1, 5.0, 777)
    whole, _ = assign_chunks(costs, budget=13.0, max_sequences=9)
    parts, state = [], (0, 0.0, 0)
    for piece in np.array_split(costs, [5, 6, 100, 101, 400]):
        ids, state = assign_chunks(piece, budget=13.0, max_sequences=9, state=state)
        parts.append(ids)
    assert np.array_equal(np.concatenate(parts), whole)


def test_item_over_budget_gets_own_chunk():
    ids, _ = assign_chunks(np.array([1.0, 50.0, 1.0, 1.0]), budget=10.0, max_sequences=10)
    assert ids.tolist() == [0, 1, 2, 2]


@pytest.mark.parametrize("bad", [{"budget": 0, "max_sequences": 1}, {"budget": 1.0, "max_sequences": 0}])
def test_assign_chunks_rejects_bad_limits(bad):
    with pytest.raises(ValueError):
        assign_chunks(np.ones(3), **bad)


def test_cost_model_grows_faster_than_linear():
    m = CostModel.from_config({})
    s = m.seconds(np.array([100, 200, 400, 800]))
    assert np.all(np.diff(s) > 0)
    assert s[3] / s[2] > s[1] / s[0]


def test_plan_chunks_accounting(tmp_path):
    rng = np.random.default_rng(2)
    alphabet = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    uniq = ["".join(rng.choice(alphabet, rng.integers(20, 400))) for _ in range(200)]
    f1 = [(f"a{i}", s) for i, s in enumerate(uniq[:150])] + [("dup_in_file", uniq[3]), ("bad", "MK-T" * 10)]
    f2 = [(f"a{i}", s) for i, s in enumerate(uniq[150:])] + [("a0", uniq[0]), ("x", uniq[160]), ("short", "MKT")]
    parts = []
    for k, recs in enumerate((f1, f2)):
        path = write_fasta(tmp_path / f"f{k}.fa", recs, compress="gz" if k else None)
        read_part(path, tmp_path / f"p{k}.parquet", source=path.name, source_index=k, min_length=10, max_length=1000)
        parts.append(tmp_path / f"p{k}.parquet")
    plans = plan_chunks(
        parts,
        records_out=tmp_path / "records.parquet",
        sequences_out=tmp_path / "sequences.parquet",
        chunks_dir=tmp_path / "chunks",
        settings=chunk_settings(5.0, 40),
        memory_gb=0.5,
        scratch_dir=tmp_path / "scratch",
    )
    rec = pq.read_table(tmp_path / "records.parquet").to_pylist()
    seq = pq.read_table(tmp_path / "sequences.parquet").to_pylist()
    # records in = records out, in input order
    assert len(rec) == len(f1) + len(f2)
    assert [(r["source_index"], r["record_index"]) for r in rec] == [(0, i) for i in range(len(f1))] + [(1, i) for i in range(len(f2))]
    status = [r["status"] for r in rec]
    assert status.count("duplicate") == 3 and status.count("invalid_characters") == 1 and status.count("too_short") == 1
    dups = [r for r in rec if r["status"] == "duplicate"]
    assert dups[1]["reason"] == "same sequence as record_index 0 of f0.fa"
    # ok + duplicate records map to unique sequences, each exactly once
    by_checksum = {s["checksum"]: s for s in seq}
    assert len(by_checksum) == len(seq) == 200
    mapped = [r for r in rec if r["status"] in ("ok", "duplicate")]
    assert all(r["checksum"] in by_checksum for r in mapped)
    assert sum(s["n_records"] for s in seq) == len(mapped)
    # the first occurrence keeps ok
    assert sum(1 for r in rec if r["status"] == "ok") == 200
    # sorted by length; every unique sequence in exactly one chunk file
    assert [s["length"] for s in seq] == sorted(s["length"] for s in seq)
    seen = []
    for p in read_plan(tmp_path / "chunks/plan.tsv"):
        t = pq.read_table(tmp_path / "chunks" / f"chunk_{p.chunk:06d}.parquet")
        assert t.num_rows == p.n_sequences <= 40
        assert p.est_seconds <= 5.0 or p.n_sequences == 1
        seen += t["checksum"].to_pylist()
        assert p.content == chunk_content(t["checksum"].to_pylist())  # what the fold job will fold
        assert {by_checksum[c]["chunk"] for c in t["checksum"].to_pylist()} == {p.chunk}
    assert sorted(seen) == sorted(by_checksum)
    assert len(plans) == len(read_plan(tmp_path / "chunks/plan.tsv")) > 3
    assert not (tmp_path / "scratch").exists(), "scratch database left behind"


def test_plan_chunks_with_no_valid_record(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">a\nMK-T\n>b\n\n")
    read_part(path, tmp_path / "p.parquet", source="bad.fa", source_index=0, min_length=1, max_length=100)
    plans = plan_chunks([tmp_path / "p.parquet"], records_out=tmp_path / "r.parquet", sequences_out=tmp_path / "s.parquet",
                        chunks_dir=tmp_path / "chunks", settings=chunk_settings(1.0, 10), memory_gb=1)  # fmt: skip
    assert plans == [] and read_plan(tmp_path / "chunks/plan.tsv") == []
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 2
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 0


def test_records_keep_input_order_at_scale(tmp_path):
    """Many records in several parts, read by parallel DuckDB threads: order is kept."""
    rng = np.random.default_rng(5)
    alphabet = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    pool = ["".join(rng.choice(alphabet, 30)) for _ in range(5000)]
    parts = []
    for k in range(3):
        recs = [(f"r{k}_{i}", pool[rng.integers(0, len(pool))]) for i in range(60_000)]
        path = write_fasta(tmp_path / f"f{k}.fa", recs)
        read_part(path, tmp_path / f"p{k}.parquet", source=path.name, source_index=k, min_length=10, max_length=1000, workers=2)
        parts.append(tmp_path / f"p{k}.parquet")
    plan_chunks(parts, records_out=tmp_path / "r.parquet", sequences_out=tmp_path / "s.parquet", chunks_dir=tmp_path / "c",
                settings=chunk_settings(50.0, 1000), memory_gb=0.5, threads=2)  # fmt: skip
    t = pq.read_table(tmp_path / "r.parquet", columns=["source_index", "record_index", "status"])
    key = t["source_index"].to_numpy().astype(np.int64) * 10**6 + t["record_index"].to_numpy()
    assert len(key) == 180_000 and np.all(np.diff(key) > 0)
    assert t["status"].to_pylist().count("ok") == pq.read_metadata(tmp_path / "s.parquet").num_rows


def test_sort_out_of_memory_falls_back_to_scratch_file(tmp_path, monkeypatch, caplog):
    """DuckDB running out of memory part-way through the streamed sort (after some chunks
    were staged) restarts the chunks through a scratch file: same outputs, nothing lost."""
    from foldatlas import chunking

    rng = np.random.default_rng(9)
    alphabet = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    recs = [(f"s{i}", "".join(rng.choice(alphabet, rng.integers(20, 300)))) for i in range(3000)]
    path = write_fasta(tmp_path / "in.fa", recs + recs[:500])
    read_part(path, tmp_path / "p.parquet", source="in.fa", source_index=0, min_length=10, max_length=1000)

    def plan(out):
        return plan_chunks([tmp_path / "p.parquet"], records_out=out / "r.parquet", sequences_out=out / "s.parquet",
                           chunks_dir=out / "chunks", settings=chunk_settings(20.0, 100), memory_gb=0.5)  # fmt: skip

    want = plan(tmp_path / "normal")
    real = chunking._stream_sorted

    def failing(con, query):
        stream = real(con, query)
        yield next(stream)
        raise chunking.SortOutOfMemory("Out of Memory Error: failed to pin block (injected)")

    monkeypatch.setattr(chunking, "_STREAM_ROWS", 1000)  # several batches, so chunks are staged before the failure
    monkeypatch.setattr(chunking, "_stream_sorted", failing)
    got = plan(tmp_path / "fallback")
    assert "sorting to a scratch file instead" in caplog.text
    assert got == want and len(got) > 3
    for name in ("r.parquet", "s.parquet", *(f"chunks/chunk_{p.chunk:06d}.parquet" for p in want)):
        assert pq.read_table(tmp_path / "fallback" / name).equals(pq.read_table(tmp_path / "normal" / name)), name
    assert sorted(p.name for p in (tmp_path / "fallback" / "chunks").iterdir()) == sorted(p.name for p in (tmp_path / "normal" / "chunks").iterdir())


def _ingested(tmp_path, n_files=2, n=40):
    """Parts and independent counts of ``n_files`` files of ``n`` records each, as read_fasta makes them."""
    from foldatlas.ingest import read_fasta_file
    from foldatlas.settings import IngestSettings

    rng = np.random.default_rng(5)
    parts, counts = [], []
    for k in range(n_files):
        recs = [(f"f{k}r{i}", "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30 + i))) for i in range(n)]
        path = write_fasta(tmp_path / f"in{k}.fa", recs)
        parts.append(tmp_path / f"{k}.parquet")
        counts.append(tmp_path / f"{k}.count.json")
        read_fasta_file(path, parts[-1], source=f"in{k}.fa", source_index=k, settings=IngestSettings.from_config({}), workers=1, count_out=counts[-1])
    return parts, counts


def test_plan_chunks_gathers_the_counts_and_refuses_a_part_that_lost_records(tmp_path):
    import json

    from foldatlas.errors import AccountingError

    parts, counts = _ingested(tmp_path)
    out = dict(records_out=tmp_path / "records.parquet", sequences_out=tmp_path / "sequences.parquet", chunks_dir=tmp_path / "chunks",
               settings=chunk_settings(100.0, 1000), memory_gb=0.5, counts=counts, inputs_out=tmp_path / "inputs.json")  # fmt: skip
    plan_chunks(parts, **out)
    files = json.loads((tmp_path / "inputs.json").read_text())["files"]
    assert [(f["source_index"], f["source"], f["records"]) for f in files] == [(0, "in0.fa", 40), (1, "in1.fa", 40)]
    # a part that lost records after it was counted (a stale or partial part)
    pq.write_table(pq.read_table(parts[1]).slice(0, 37), parts[1])
    (tmp_path / "inputs.json").unlink()
    with pytest.raises(AccountingError, match=r"in1\.fa: the input holds 40 records \(independent count of its header lines\), its validated part has 37"):
        plan_chunks(parts, **out)
    assert not (tmp_path / "inputs.json").exists()


def test_duckdb_out_of_memory_names_the_setting(tmp_path):
    from foldatlas.errors import ConfigError

    parts, _ = _ingested(tmp_path, n_files=1, n=3000)
    with pytest.raises(ConfigError, match=r"config key 'ingest\.memory_gb' = 0\.001: DuckDB ran out of memory .* raise ingest\.memory_gb") as info:
        plan_chunks(parts, records_out=tmp_path / "r.parquet", sequences_out=tmp_path / "s.parquet", chunks_dir=tmp_path / "c",
                    settings=chunk_settings(100.0, 1000), memory_gb=0.001, scratch_dir=tmp_path / "scratch")  # fmt: skip
    assert info.value.key == "ingest.memory_gb"
    assert not (tmp_path / "scratch").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_chunk_content_depends_on_the_sequences_and_their_order():
    a, b = "a" * 32, "b" * 32
    assert chunk_content([a, b]) == chunk_content([a, b]) != chunk_content([b, a]) != chunk_content([a])
    assert chunk_content([a + b]) != chunk_content([a, b])  # one per line: no ambiguity


def test_a_plan_of_an_earlier_version_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "plan.tsv"
    path.write_text("chunk\tn_sequences\tresidues\tmin_length\tmax_length\test_seconds\n0\t1\t30\t30\t30\t0.100\n")
    with pytest.raises(StaleOutputError, match="expected the columns .*content, bucket, found chunk, .*est_seconds: an earlier foldatlas wrote it; delete its folder"):
        read_plan(path)


def _plan_parts(tmp_path, n: int, seed: int):
    """Two parts of ``n`` random unique sequences (20-300 aa) with a few duplicates."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    uniq = ["".join(rng.choice(alphabet, rng.integers(20, 300))) for _ in range(n)]
    parts = []
    for k, recs in enumerate(([(f"a{i}", s) for i, s in enumerate(uniq[: n // 2])], [(f"b{i}", s) for i, s in enumerate(uniq[n // 2 :] + uniq[:5])])):
        path = write_fasta(tmp_path / f"f{k}.fa", recs)
        read_part(path, tmp_path / f"p{k}.parquet", source=path.name, source_index=k, min_length=10, max_length=1000)
        parts.append(tmp_path / f"p{k}.parquet")
    return parts


def _planned(tmp_path, parts, name: str, settings, **kwargs):
    out = tmp_path / name
    plans = plan_chunks(parts, records_out=out / "records.parquet", sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks",
                        settings=settings, memory_gb=0.5, scratch_dir=tmp_path / "scratch", **kwargs)  # fmt: skip
    chunks = {p.chunk: pq.read_table(out / "chunks" / f"chunk_{p.chunk:06d}.parquet") for p in plans}
    return plans, chunks, pq.read_table(out / "sequences.parquet").to_pylist()


@pytest.mark.parametrize("digits", [1, 2])
def test_each_chunk_keeps_to_one_checksum_bucket(tmp_path, digits):
    parts = _plan_parts(tmp_path, 600, seed=7)
    flat, flat_chunks, _ = _planned(tmp_path, parts, "flat", chunk_settings(6.0, 25, bucket_digits=0))
    plans, chunks, seqs = _planned(tmp_path, parts, "split", chunk_settings(6.0, 25, bucket_digits=digits))
    row = lambda p: (p.chunk, p.content, p.bucket)  # noqa: E731
    assert {p.bucket for p in flat} == {""} and list(map(row, read_plan(tmp_path / "flat/chunks/plan.tsv"))) == list(map(row, flat))
    assert list(map(row, read_plan(tmp_path / "split/chunks/plan.tsv"))) == list(map(row, plans)), "plan.tsv keeps each chunk's bucket"
    seen = []
    for p in plans:
        checksums = chunks[p.chunk]["checksum"].to_pylist()
        assert len(p.bucket) == digits and {c[:digits] for c in checksums} == {p.bucket}
        lengths = chunks[p.chunk]["length"].to_pylist()
        assert lengths == sorted(lengths) and p.n_sequences == len(lengths) <= 25
        assert p.est_seconds <= 6.0 or p.n_sequences == 1
        assert p.content == chunk_content(checksums)
        seen += checksums
    assert sorted(seen) == sorted(s["checksum"] for s in seqs) and len(seen) == 600
    # sequences.parquet: sorted by bucket, then length, then checksum; chunks numbered in that order
    assert [(s["checksum"][:digits], s["length"], s["checksum"]) for s in seqs] == sorted((s["checksum"][:digits], s["length"], s["checksum"]) for s in seqs)
    assert [p.chunk for p in plans] == list(range(len(plans))) and [p.bucket for p in plans] == sorted(p.bucket for p in plans)
    assert {s["chunk"] for s in seqs if s["checksum"] in set(chunks[3]["checksum"].to_pylist())} == {3}
    # the price: at most one partly filled chunk more per bucket than the plain length sort
    buckets = {s["checksum"][:digits] for s in seqs}
    assert len(flat) <= len(plans) <= len(flat) + len(buckets)
    assert sum(p.est_seconds for p in plans) == pytest.approx(sum(p.est_seconds for p in flat))


def test_bucket_digits_auto_follows_the_estimate_of_new_chunks():
    from foldatlas.chunking import bucket_digits
    from foldatlas.errors import ConfigError

    assert [bucket_digits("auto", n) for n in (0, 255.9, 256, 4095, 4096, 1e9)] == [0, 0, 1, 1, 2, 2]
    assert [bucket_digits(d, 1e9) for d in (0, 1, 2)] == [0, 1, 2], "a number is taken as it is"
    with pytest.raises(ConfigError, match="chunks.bucket_digits' = 3: expected auto or 0 to 2"):
        bucket_digits(3, 0)


def test_the_estimate_counts_a_sequence_over_the_budget_as_one_chunk(tmp_path):
    """40 sequences of 1000 aa over a 1-second budget (9 s each: a chunk each) and 400 of
    50 aa (0.16 s each): about 105 chunks, cut as 107; too few to split into buckets."""
    rng = np.random.default_rng(9)
    alphabet = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    recs = [(f"l{i}", "".join(rng.choice(alphabet, 1000))) for i in range(40)] + [(f"s{i}", "".join(rng.choice(alphabet, 50))) for i in range(400)]
    path = write_fasta(tmp_path / "a.fa", recs)
    read_part(path, tmp_path / "p.parquet", source="a.fa", source_index=0, min_length=10, max_length=1000)
    plans, _, _ = _planned(tmp_path, [tmp_path / "p.parquet"], "auto", chunk_settings(1.0, 50_000))
    assert 100 <= len(plans) < 256 and {p.bucket for p in plans} == {""}


def test_auto_splits_by_the_sequences_to_fold_not_those_the_store_holds(tmp_path):
    parts = _plan_parts(tmp_path, 400, seed=8)
    # about 400 chunks of one sequence each: split into 16 buckets
    tiny = chunk_settings(0.01, 1)
    plans, _, seqs = _planned(tmp_path, parts, "all", tiny)
    assert len(plans) == 400 and {len(p.bucket) for p in plans} == {1}
    # the store folded 300 of them: 100 chunks to plan, too few to split
    keys = tmp_path / "keys.parquet"
    held = seqs[:300]
    pq.write_table(pa.table({"checksum": [s["checksum"] for s in held], "chunk": pa.array([7] * 300, pa.int32()), "release": ["r1"] * 300}), keys)
    plans, chunks, seqs = _planned(tmp_path, parts, "later", tiny, known=[keys], release={"name": "r2", "first_chunk": 8})
    assert len(plans) == 100 and {p.bucket for p in plans} == {""}
    assert sorted(c for t in chunks.values() for c in t["checksum"].to_pylist()) == sorted(s["checksum"] for s in seqs if s["release"] == "r2")
