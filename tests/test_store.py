"""The store of releases: a sequence is folded once per model fingerprint across runs.

Unit tests on hand-made fold outputs (as fold_chunk writes them: test_atlas.make_chunk)
for planning against the store, publication (checks, idempotence, a kill at each step)
and reading back; then a campaign of two releases against one run over the union.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, chunk_settings, write_fasta
from foldatlas.chunking import plan_chunks, read_plan
from foldatlas.archive import read_member
from foldatlas.errors import StaleOutputError
from foldatlas.fasta import sequence_checksum
from foldatlas.layout import RELEASE_FILE, Layout, StoreLayout
from foldatlas.store import atlas_sources, check_unpublished, file_checksum, plan_release, publish_release, read_manifest, release_chunk_files, release_history, reserve_chunks, verify_release
from foldatlas.tables import SEQUENCES_SCHEMA, write_table
from test_atlas import AA, make_chunk

KEY = json.dumps({"fold": {"model": "tiny"}}, sort_keys=True)
SEQS = ["".join(AA[(i * 7 + j) % 20] for j in range(20 + i)) for i in range(12)]


def write_inputs(path: Path, files: dict[str, int]) -> Path:
    """An inputs.json of files named ``name`` with ``records`` each (text hash from the name)."""
    counts = [{"source_index": k, "source": name, "format": "plain", "file_bytes": 1, "text_bytes": 1, "records": n,
               "text_sha256": hashlib.sha256(name.encode()).hexdigest()} for k, (name, n) in enumerate(files.items())]  # fmt: skip
    path.write_text(json.dumps({"files": counts}))
    return path


def write_sequences(path: Path, seqs: list[str], chunk_of: list[int], release_of: list[str]) -> Path:
    n = len(seqs)
    write_table(pa.table({
        "checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs, "length": [len(s) for s in seqs],
        "n_nonstandard": [0] * n, "n_records": [1] * n, "est_seconds": [3600.0] * n, "chunk": chunk_of, "release": release_of,
        "representative": pa.nulls(n, pa.string()), "identity": pa.nulls(n, pa.float64()), "coverage": pa.nulls(n, pa.float64()),
    }), path, SEQUENCES_SCHEMA)  # fmt: skip
    return path


def planned(tmp: Path, store: StoreLayout, name: str, chunks: list[int]) -> Path:
    rel, _ = plan_release(store, name, KEY)
    folder = tmp / f"plan-{rel.name}-{len(list(tmp.glob('plan-*')))}"
    folder.mkdir()
    (folder / RELEASE_FILE).write_text(json.dumps({**rel.__dict__, "chunks": chunks}))
    return folder / RELEASE_FILE


@pytest.fixture
def release1(tmp_path):
    """A store with release r0001: chunks 0 and 1 of six sequences (SEQS[:6]) from a.fa."""
    store = Layout(tmp_path / "results").store("f" * 16)
    make_chunk(store.dir / "chunks", 0, SEQS[:3])
    make_chunk(store.dir / "chunks", 1, SEQS[3:6])
    plan = planned(tmp_path, store, "", [0, 1])
    seqs = write_sequences(tmp_path / "seq1.parquet", SEQS[:6], [0, 0, 0, 1, 1, 1], ["r0001"] * 6)
    inputs = write_inputs(tmp_path / "in1.json", {"a.fa": 6})
    record = publish_release(store, planned=plan, sequences=seqs, inputs=inputs, receipt=tmp_path / "receipt1.json")
    return tmp_path, store, record


def test_a_published_release_records_every_file_and_its_counts(release1):
    tmp, store, record = release1
    m = read_manifest(store)
    assert m["generation"] == 1 and m["next_chunk"] == 2 and [r["name"] for r in m["releases"]] == ["r0001"]
    assert m["releases"][0]["sha256"] == file_checksum(store.release_file("r0001"))["sha256"]
    assert record["counts"] == {"records": 6, "unique_sequences": 6, "new_sequences": 6, "already_folded": 0, "represented": 0, "est_gpu_hours_folded": 6.0, "est_gpu_hours_saved": 0.0, "est_gpu_hours_saved_by_redundancy": 0.0}
    assert record["inputs"][0]["source_id"] == f"a.fa@{hashlib.sha256(b'a.fa').hexdigest()[:12]}"
    chunk_files = dict(release_chunk_files(store, "r0001"))
    assert list(chunk_files) == [0, 1] and chunk_files[1]["structures"] == file_checksum(store.chunk_outputs("000001").structures)
    assert record["chunks"] == {"rows": 2, **file_checksum(store.release_chunks("r0001"))}
    keys = pa.concat_tables(pq.read_table(f).append_column("bucket", pa.array([f.stem] * pq.read_metadata(f).num_rows))
                            for f in sorted(store.release_keys("r0001").glob("*.parquet")))  # fmt: skip
    assert sorted(keys["checksum"].to_pylist()) == sorted(sequence_checksum(s.encode()) for s in SEQS[:6])
    assert [c[:2] for c in keys["checksum"].to_pylist()] == keys["bucket"].to_pylist() and set(keys["bucket"].to_pylist()) == set(record["keys"]["buckets"])
    assert verify_release(store, "r0001") == []
    assert json.loads((tmp / "receipt1.json").read_text())["release"] == "r0001"
    index = duckdb.sql(f"SELECT * FROM '{store.release_structures('r0001')}/*.parquet'").arrow().read_all().to_pylist()
    assert sorted(e["checksum"] for e in index) == sorted(keys["checksum"].to_pylist()) and record["structures"]["rows"] == 6
    for e in index:  # every structure straight from the chunk archive by its byte range
        text = read_member(store.dir / e["archive"], e["data_offset"], e["data_length"], expect=e["member"])
        assert text.startswith(f"REMARK 250 checksum {e['checksum']}".encode())


def test_a_changed_byte_anywhere_in_a_release_is_found(release1):
    _, store, _ = release1
    path = store.chunk_outputs("000000").embeddings
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    bucket = next(store.release_structures("r0001").glob("*.parquet"))
    bucket.unlink()
    assert verify_release(store, "r0001") == [
        f"{bucket}: missing, or SHA-256 differs from the release record's",
        f"{path}: missing, or SHA-256 or size differs from the release record's",
    ]


def test_a_seal_holds_only_while_its_files_are_unchanged(tmp_path):
    """A chunk's seal (index.parquet) records its files' SHA-256 and its structures' data
    ranges; it is read back only while every file keeps its identity. A copy is sealed
    again, a changed content stops, a seal that is not this chunk's is not taken."""
    import shutil

    from foldatlas.seal import SEAL_KEY, chunk_seal, read_seal, seal_chunk

    store = Layout(tmp_path / "results").store("f" * 16)
    make_chunk(store.dir / "chunks", 7, SEQS[:4])
    ch = store.chunk_outputs("000007")
    assert read_seal(ch) is None  # made by hand: never sealed
    seal = seal_chunk(ch)
    assert (seal.chunk, seal.sequences, seal.structures) == (7, 4, 4) and read_seal(ch) == seal
    assert seal.release_files() == {f: file_checksum(getattr(ch, f)) for f in ("predictions", "embeddings", "structures")}
    for e in pq.read_table(ch.index).to_pylist():
        assert e["archive"] == "chunks/chunk_000007/structures.tar" and e["chunk"] == 7
        assert read_member(store.dir / e["archive"], e["data_offset"], e["data_length"], expect=e["member"]).startswith(f"REMARK 250 checksum {e['checksum']}".encode())
    shutil.copy2(ch.embeddings, tmp_path / "copy")
    os.replace(tmp_path / "copy", ch.embeddings)  # the same bytes and times, another inode
    assert read_seal(ch) is None
    again = chunk_seal(ch)
    assert again.release_files() == seal.release_files() and read_seal(ch) == again
    st = ch.structures.stat()
    data = bytearray(ch.structures.read_bytes())
    data[600] ^= 1  # inside the first structure's gzip data; size and modification time kept
    ch.structures.write_bytes(bytes(data))
    os.utime(ch.structures, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_seal(ch) is None  # its status-change time moved
    with pytest.raises(StaleOutputError, match=r"structures.tar: changed after its fold job sealed it"):
        chunk_seal(ch)
    os.rename(store.dir / "chunks" / "chunk_000007", store.dir / "chunks" / "chunk_000008")
    other = store.chunk_outputs("000008")
    assert read_seal(other) is None  # another chunk's seal: sealed anew
    assert chunk_seal(other).chunk == 8
    record = json.loads(pq.read_schema(other.index).metadata[SEAL_KEY])
    del record["checksums_sha256"]
    pq.write_table(pq.read_table(other.index).replace_schema_metadata({SEAL_KEY: json.dumps(record).encode()}), other.index)
    assert read_seal(other) is None and chunk_seal(other).checksums_sha256
    other.index.write_bytes(b"not parquet")
    assert read_seal(other) is None and chunk_seal(other).sequences == 4


def test_a_release_is_the_same_whether_its_chunks_were_sealed_by_their_fold_jobs_or_not(tmp_path):
    """Seals change where the checksums are computed, not what is published: the release
    record's files and the bucket files are byte for byte those of a publication that
    sealed the chunks itself; and a chunk damaged after its seal is not published."""
    from foldatlas.seal import seal_chunk

    records = []
    for sealed in (True, False):
        store = Layout(tmp_path / f"sealed{sealed}" / "results").store("f" * 16)
        make_chunk(store.dir / "chunks", 0, SEQS[:3])
        make_chunk(store.dir / "chunks", 1, SEQS[3:6])
        if sealed:
            for c in ("000000", "000001"):
                seal_chunk(store.chunk_outputs(c))
        seqs = write_sequences(tmp_path / f"seq{sealed}.parquet", SEQS[:6], [0, 0, 0, 1, 1, 1], ["r0001"] * 6)
        inputs = write_inputs(tmp_path / f"in{sealed}.json", {"a.fa": 6})
        rec = publish_release(store, planned=planned(tmp_path, store, "", [0, 1]), sequences=seqs, inputs=inputs, receipt=tmp_path / f"receipt{sealed}.json")
        records.append({k: rec[k] for k in ("chunks", "keys", "structures", "sequences", "counts")})
    assert records[0] == records[1]
    make_chunk(store.dir / "chunks", 2, SEQS[6:9])
    ch = store.chunk_outputs("000002")
    seal_chunk(ch)
    ch.embeddings.write_bytes(ch.embeddings.read_bytes()[:-1] + b"!")
    seqs = write_sequences(tmp_path / "seq2.parquet", SEQS[:9], [0, 0, 0, 1, 1, 1, 2, 2, 2], ["r0001"] * 6 + ["r0002"] * 3)
    with pytest.raises(StaleOutputError, match=r"embeddings.parquet: changed after its fold job sealed it"):
        publish_release(store, planned=planned(tmp_path, store, "", [2]), sequences=seqs, inputs=write_inputs(tmp_path / "in2.json", {"a.fa": 6, "b.fa": 3}), receipt=tmp_path / "r2.json")


def test_a_release_of_foldatlas_0_5_listing_its_chunks_in_its_record_is_still_read(release1):
    """Releases of foldatlas < 0.6 list their chunks in release.json, not chunks.parquet:
    verification, the atlas's chunk lookup and the history read both."""
    tmp, store, _ = release1
    rec = json.loads(store.release_file("r0001").read_text())
    files = dict(release_chunk_files(store, "r0001"))
    rec["chunks"] = [{"chunk": c, "files": f} for c, f in files.items()]
    store.release_chunks("r0001").unlink()
    store.release_file("r0001").write_text(json.dumps(rec))
    m = read_manifest(store)
    m["releases"][0]["sha256"] = file_checksum(store.release_file("r0001"))["sha256"]
    store.manifest.write_text(json.dumps(m))
    assert dict(release_chunk_files(store, "r0001")) == files and verify_release(store, "r0001") == []
    assert release_history(store)[0]["chunks"] == 2
    seqs = write_sequences(tmp / "few.parquet", SEQS[:5], [0, 0, 0, 1, 1], ["r0001"] * 5)
    assert [c.chunk for c in atlas_sources(store, seqs, tmp / "receipt1.json")["chunks"]] == [0, 1]
    store.chunk_outputs("000001").structures.write_bytes(b"damaged")
    assert verify_release(store, "r0001") == [f"{store.chunk_outputs('000001').structures}: missing, or SHA-256 or size differs from the release record's"]


def test_a_damaged_chunk_list_is_reported_with_every_other_problem(release1):
    """verify_release goes on past a damaged chunks.parquet; a reader of a missing or
    shortened chunk list stops with the store's damage named, not a plan to redo."""
    tmp, store, _ = release1
    archive = store.chunk_outputs("000001").structures
    kept = archive.read_bytes()
    archive.write_bytes(b"damaged")
    rows = pq.read_table(store.release_chunks("r0001"))
    pq.write_table(rows.slice(0, 1), store.release_chunks("r0001"))  # one chunk fewer, readable
    assert verify_release(store, "r0001") == [f"{store.release_chunks('r0001')}: missing, or SHA-256 differs from the release record's",
                                              f"{store.release_chunks('r0001')}: its chunks cannot be read ({store.release_chunks('r0001')}: expected 2 chunks as published, found 1: "
                                              "the store was changed after publication (foldatlas.store.verify_release)), so their files were not checked"]  # fmt: skip
    seqs = write_sequences(tmp / "few.parquet", SEQS[:5], [0, 0, 0, 1, 1], ["r0001"] * 5)
    with pytest.raises(StaleOutputError, match=r"chunks.parquet: expected 2 chunks as published, found 1"):
        atlas_sources(store, seqs, tmp / "receipt1.json")
    store.release_chunks("r0001").unlink()
    with pytest.raises(StaleOutputError, match=r"chunks.parquet: expected the chunk list of release r0001, found it unreadable"):
        atlas_sources(store, seqs, tmp / "receipt1.json")
    pq.write_table(rows, store.release_chunks("r0001"))  # the same rows again: other bytes are possible, the list is whole
    assert f"{archive}: missing, or SHA-256 or size differs from the release record's" in verify_release(store, "r0001")
    archive.write_bytes(kept)
    assert [c.chunk for c in atlas_sources(store, seqs, tmp / "receipt1.json")["chunks"]] == [0, 1]


def test_planning_leaves_out_what_the_store_holds_and_numbers_chunks_after_it(release1, tmp_path):
    """Release 2 over six known and six new sequences plans only the new ones, in chunks
    numbered from 2; the known keep their chunk and release in sequences.parquet."""
    tmp, store, _ = release1
    fa = write_fasta(tmp / "ab.fa", [(f"s{i}", s) for i, s in enumerate(SEQS)])
    part = tmp / "part.parquet"
    from conftest import read_part

    read_part(fa, part, source="ab.fa", source_index=0)
    rel, known = plan_release(store, "", KEY)
    assert rel.name == "r0002" and rel.first_chunk == 2 and rel.generation == 1 and sorted(known) == sorted(store.release_keys("r0001").glob("*.parquet"))
    out = tmp / "plan2"
    plans = plan_chunks([part], records_out=out / "records.parquet", sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks",
                        settings=chunk_settings(2 * 3600, 4), memory_gb=1, known=known, release=rel.__dict__)  # fmt: skip
    assert [p.chunk for p in plans] == [2, 3] and sum(p.n_sequences for p in plans) == 6
    seqs = pq.read_table(out / "sequences.parquet").to_pylist()
    old = {sequence_checksum(s.encode()) for s in SEQS[:6]}
    assert {(r["release"], r["chunk"] in (0, 1)) for r in seqs if r["checksum"] in old} == {("r0001", True)}
    assert {(r["release"], r["chunk"] in (2, 3)) for r in seqs if r["checksum"] not in old} == {("r0002", True)}
    chunked = {c for f in (out / "chunks").glob("chunk_*.parquet") for c in pq.read_table(f)["checksum"].to_pylist()}
    assert chunked == {r["checksum"] for r in seqs} - old
    assert json.loads((out / "chunks" / RELEASE_FILE).read_text())["chunks"] == [2, 3]
    assert [p.chunk for p in read_plan(out / "chunks/plan.tsv")] == [2, 3]


def test_chunks_past_a_million_are_numbered_after_as_numbers(release1):
    """A plan numbers its chunks after the highest reserved folder as a number (as
    strings, ``chunk_999999`` sorts after ``chunk_1000000``)."""
    tmp, store, _ = release1
    reserve_chunks(store, [999999, 10**6])
    assert store.chunk_numbers() == [0, 1, 999999, 10**6]
    rel, _ = plan_release(store, "", KEY)
    assert rel.first_chunk == 10**6 + 1
    check_unpublished(store, "1000001")
    with pytest.raises(StaleOutputError, match=r"chunk 000001 belongs to a published release"):
        check_unpublished(store, "000001")


def test_publication_refuses_what_it_cannot_vouch_for(release1):
    tmp, store, _ = release1
    inputs = write_inputs(tmp / "in2.json", {"a.fa": 6, "b.fa": 3})
    seqs = write_sequences(tmp / "seq2.parquet", SEQS[:9], [0, 0, 0, 1, 1, 1, 2, 2, 2], ["r0001"] * 6 + ["r0002"] * 3)
    plan = planned(tmp, store, "", [2])
    args = dict(planned=plan, sequences=seqs, inputs=inputs, receipt=tmp / "receipt2.json")
    with pytest.raises(StaleOutputError, match=r"chunk_000002/predictions.parquet: missing: chunk 000002 of this release has not been folded"):
        publish_release(store, **args)
    make_chunk(store.dir / "chunks", 2, SEQS[6:8])  # one planned sequence short
    with pytest.raises(StaleOutputError, match=r"expected the 3 sequences planned into chunk 000002, found 2 \(1 missing, 0 not planned\)"):
        publish_release(store, **args)
    make_chunk(store.dir / "chunks", 2, [*SEQS[6:8], SEQS[0]])  # as many, one of them another chunk's
    with pytest.raises(StaleOutputError, match=r"expected the 3 sequences planned into chunk 000002, found 3 \(1 missing, 1 not planned\)"):
        publish_release(store, **args)
    assert read_manifest(store)["generation"] == 1 and not (tmp / "receipt2.json").exists()
    other = planned(tmp, store, "r0001", [2])  # a published name, other content
    with pytest.raises(StaleOutputError, match=r"release r0001 is published already, with other inputs or chunks"):
        publish_release(store, **{**args, "planned": other})


def test_publication_is_idempotent_and_stops_a_plan_overtaken_by_another_run(release1):
    tmp, store, record = release1
    stale = planned(tmp, store, "", [2])  # planned at generation 1
    inputs = write_inputs(tmp / "in2.json", {"a.fa": 6, "b.fa": 3})
    seqs = write_sequences(tmp / "seq2.parquet", SEQS[:9], [0, 0, 0, 1, 1, 1, 2, 2, 2], ["r0001"] * 6 + ["r0002"] * 3)
    make_chunk(store.dir / "chunks", 2, SEQS[6:9])
    again = publish_release(store, planned=tmp / "plan-r0001-0" / RELEASE_FILE, sequences=tmp / "seq1.parquet", inputs=tmp / "in1.json", receipt=tmp / "r.json")
    assert again == record and read_manifest(store)["generation"] == 1  # a rerun changes nothing
    first = {p: p.read_bytes() for p in store.release_dir("r0001").rglob("*") if p.is_file()}
    publish_release(store, planned=stale, sequences=seqs, inputs=inputs, receipt=tmp / "receipt2.json")
    assert read_manifest(store)["generation"] == 2
    assert {p: p.read_bytes() for p in store.release_dir("r0001").rglob("*") if p.is_file()} == first  # appended, never rebuilt
    assert sum(pq.read_metadata(f).num_rows for f in store.release_structures("r0002").glob("*.parquet")) == 3
    # a third run planned before r0002 was published
    raced = tmp / "raced.json"
    raced.write_text(json.dumps({"name": "r0003", "fingerprint": store.fingerprint, "first_chunk": 2, "generation": 1, "chunks": [2]}))
    with pytest.raises(StaleOutputError, match=r"the store gained releases since this run planned release r0003 \(generation 1, now 2\).*--forcerun plan_chunks"):
        publish_release(store, planned=raced, sequences=seqs, inputs=inputs, receipt=tmp / "receipt3.json")
    # no new sequences over the inputs of r0001: r0001 again, no empty release
    empty = planned(tmp, store, "", [])
    publish_release(store, planned=empty, sequences=tmp / "seq1.parquet", inputs=tmp / "in1.json", receipt=tmp / "receipt4.json")
    assert json.loads((tmp / "receipt4.json").read_text())["release"] == "r0001" and read_manifest(store)["generation"] == 2


def test_a_published_release_is_never_written_again(release1):
    """store.release reused for a run without new sequences over other inputs: refused,
    and the published folder and manifest stay byte for byte as they were."""
    tmp, store, _ = release1
    before = {p: p.read_bytes() for p in store.dir.rglob("*") if p.is_file()}
    plan = planned(tmp, store, "r0001", [])
    subset = write_sequences(tmp / "sub.parquet", SEQS[:3], [0, 0, 0], ["r0001"] * 3)
    with pytest.raises(StaleOutputError, match=r"release r0001 is published already, with other inputs or chunks: a published release is never changed"):
        publish_release(store, planned=plan, sequences=subset, inputs=write_inputs(tmp / "sub.json", {"sub.fa": 3}), receipt=tmp / "r.json")
    assert {p: p.read_bytes() for p in store.dir.rglob("*") if p.is_file()} == before


def test_a_plan_overtaken_by_another_run_neither_collides_nor_publishes(release1):
    """Run A plans (and reserves) chunks 2-3 and is killed; run B plans after them, folds
    and publishes first; A's fold jobs may not write a published chunk, and A's
    publication says to plan again (not to rename its release)."""
    tmp, store, _ = release1
    a, _ = plan_release(store, "", KEY)
    reserve_chunks(store, [a.first_chunk, a.first_chunk + 1])
    b, _ = plan_release(store, "", KEY)
    assert (a.first_chunk, b.first_chunk, a.name, b.name) == (2, 4, "r0002", "r0002")
    make_chunk(store.dir / "chunks", 4, SEQS[6:9])
    plan_b = tmp / "b.json"
    plan_b.write_text(json.dumps({**b.__dict__, "chunks": [4]}))
    inputs = write_inputs(tmp / "in2.json", {"a.fa": 6, "b.fa": 3})
    publish_release(store, planned=plan_b, sequences=write_sequences(tmp / "sb.parquet", SEQS[:9], [0, 0, 0, 1, 1, 1, 4, 4, 4], ["r0001"] * 6 + ["r0002"] * 3),
                    inputs=inputs, receipt=tmp / "rb.json")  # fmt: skip
    with pytest.raises(StaleOutputError, match=r"chunk 000004 belongs to a published release of the store \(chunks up to 4 are\).*plan again"):
        check_unpublished(store, "000004")
    check_unpublished(store, "000005")
    make_chunk(store.dir / "chunks", 2, SEQS[9:12])
    plan_a = tmp / "a.json"
    plan_a.write_text(json.dumps({**a.__dict__, "chunks": [2]}))
    with pytest.raises(StaleOutputError, match=r"the store gained releases since this run planned release r0002 \(generation 1, now 2\)"):
        publish_release(store, planned=plan_a, sequences=write_sequences(tmp / "sa.parquet", SEQS[:6] + SEQS[9:12], [0, 0, 0, 1, 1, 1, 2, 2, 2], ["r0001"] * 6 + ["r0002"] * 3),
                        inputs=write_inputs(tmp / "in3.json", {"a.fa": 6, "c.fa": 3}), receipt=tmp / "ra.json")  # fmt: skip
    assert verify_release(store, "r0002") == []


def test_the_atlas_takes_only_its_own_sequences_from_a_shared_chunk(release1):
    """A later run over some of release 1's sequences reads chunk 1 for two of its three."""
    tmp, store, _ = release1
    seqs = write_sequences(tmp / "few.parquet", SEQS[:5], [0, 0, 0, 1, 1], ["r0001"] * 5)
    src = atlas_sources(store, seqs, tmp / "receipt1.json")
    assert src["release"] == "r0001" and [r["name"] for r in src["releases"]] == ["r0001"]
    assert [c.only if c.only is None else frozenset(c.only) for c in src["chunks"]] == [None, frozenset(sequence_checksum(s.encode()) for s in SEQS[3:5])]
    store.chunk_outputs("000001").embeddings.write_bytes(b"truncated")
    with pytest.raises(StaleOutputError, match=r"embeddings.parquet: expected \d+ bytes as published, found 9: the store was changed after publication"):
        atlas_sources(store, seqs, tmp / "receipt1.json")


@pytest.mark.parametrize("point", ["release_written", "manifest_written"])
def test_a_kill_during_publication_leaves_the_old_or_the_new_manifest(release1, point):
    """SIGKILL after the release folder is in place (not yet listed) and after the
    manifest was replaced: the manifest is whole, old or new; a rerun publishes."""
    tmp, store, _ = release1
    inputs = write_inputs(tmp / "in2.json", {"a.fa": 6, "b.fa": 3})
    seqs = write_sequences(tmp / "seq2.parquet", SEQS[:9], [0, 0, 0, 1, 1, 1, 2, 2, 2], ["r0001"] * 6 + ["r0002"] * 3)
    make_chunk(store.dir / "chunks", 2, SEQS[6:9])
    plan = planned(tmp, store, "", [2])
    before = store.manifest.read_bytes()
    code = (
        "import sys; from foldatlas.layout import StoreLayout; from foldatlas.store import publish_release\n"
        f"publish_release(StoreLayout({str(store.root)!r}, {store.fingerprint!r}), planned={str(plan)!r}, sequences={str(seqs)!r}, inputs={str(inputs)!r}, receipt={str(tmp / 'receipt2.json')!r})\n"
    )
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"kill_at": point}), PYTHONPATH=str(REPO / "scripts"))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == -9, res.stderr[-2000:]
    m = json.loads(store.manifest.read_text())  # whole JSON, never a half file
    assert (store.manifest.read_bytes() == before) == (point == "release_written")
    assert [r["name"] for r in m["releases"]] == (["r0001"] if point == "release_written" else ["r0001", "r0002"])
    assert not [p for p in store.dir.rglob(".*")], "no staging left visible beside the store's files"
    publish_release(store, planned=plan, sequences=seqs, inputs=inputs, receipt=tmp / "receipt2.json")
    assert [r["name"] for r in read_manifest(store)["releases"]] == ["r0001", "r0002"]
    assert verify_release(store, "r0001") == [] and verify_release(store, "r0002") == []


def test_an_input_list_changed_beyond_appended_files_is_named(tmp_path):
    from foldatlas.inputs import input_list_change

    inputs = write_inputs(tmp_path / "inputs.json", {"a.fa": 1, "b.fa": 1, "c.fa": 1})
    assert input_list_change(tmp_path / "none.json", ["a.fa"]) is None  # nothing planned yet
    assert input_list_change(inputs, ["a.fa", "b.fa", "c.fa"]) is None
    assert input_list_change(inputs, ["a.fa", "b.fa", "c.fa", "d.fa"]) is None  # appended: seen by mtime
    assert input_list_change(inputs, ["a.fa", "c.fa"]) == "1 input file(s) removed since the chunks were planned (b.fa)"
    assert input_list_change(inputs, ["b.fa", "a.fa", "c.fa"]) == "the input files were reordered since the chunks were planned"


# --- a campaign on the real workflow -------------------------------------------------


def snakemake(wd: Path, config: dict) -> str:
    (wd / "run.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"]
    res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def fasta_checksums(path: Path, lo: int, hi: int) -> set[str]:
    """MD5 of every sequence of lengths lo..hi, read with Biopython (not foldatlas's parser)."""
    from Bio import SeqIO

    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as fh:
        return {hashlib.md5(str(r.seq).upper().encode()).hexdigest() for r in SeqIO.parse(fh, "fasta") if lo <= len(r.seq) <= hi}


def atlas_view(results: Path) -> dict:
    meta = pq.read_table(results / "atlas/metadata.parquet").to_pylist()
    index = pq.read_table(results / "atlas/structures/index.parquet").to_pylist()
    members = {}
    for e in index:
        with open(results / "atlas" / e["archive"], "rb") as fh:
            fh.seek(e["data_offset"])
            members[(e["collection"], e["member"])] = fh.read(e["data_length"])
    return {
        "records": {(m["source_id"], m["record_index"]): (m["checksum"], m["status"], m["plddt"], m["ptm"]) for m in meta},
        "high_confidence": {m["checksum"] for m in meta if m["high_confidence"]},
        "members": members,
    }


@pytest.mark.workflow
def test_release_2_folds_exactly_the_new_sequences_and_equals_one_run_over_both(tmp_path):
    """Release 1 over A, release 2 over A and B (B: copies of A under new headers and new
    sequences): release 2 folds exactly B's unique sequences not in A, no checksum is in
    two prediction files, and the atlas equals that of one run over A and B in a fresh
    store, record for record, structure member for structure member (byte-identical)."""
    from test_workflow import prepare

    wd = prepare(tmp_path / "campaign", {"ingest": {"max_length": 80}, "fold": {"max_batch_size": 1}})
    config = yaml.safe_load((wd / "run.yaml").read_text())
    a = wd / "resources/demo/proteins.fasta.gz"
    known = [s for s in gzip.open(a, "rt").read().split(">")[1:]][:5]
    new = ["".join(AA[(k * 5 + j * 3) % 20] for j in range(24 + 3 * k)) for k in range(3)]
    b = write_fasta(wd / "b.fa", [(f"copy{i}", "".join(s.splitlines()[1:])) for i, s in enumerate(known)] + [(f"new{k}", s) for k, s in enumerate(new)] + [("again", new[0])])
    snakemake(wd, {**config, "input": {"fasta": [str(a.relative_to(wd))]}})
    folded_1 = {c for p in (wd / "results/store").glob("*/chunks/chunk_*/predictions.parquet") for c in pq.read_table(p)["checksum"].to_pylist()}
    assert folded_1 == fasta_checksums(a, 16, 80)
    # release 2 folds in packages (fold.chunks_per_job: 2) of one-sequence chunks, each
    # chunk within one of 16 checksum buckets, and is published one bucket a job: the
    # comparison with one plain run below proves none of it changes a prediction
    packaged = {**config, "input": {"fasta": [str(a.relative_to(wd)), b.name]}, "chunks": {**config.get("chunks", {}), "max_sequences": 1, "bucket_digits": 1},
                "fold": {**config["fold"], "chunks_per_job": 2}}  # fmt: skip
    out = snakemake(wd, packaged)
    release = json.loads((wd / "results/release.json").read_text())
    assert release["release"] == "r0002" and release["releases"] == ["r0001", "r0002"]
    expected = fasta_checksums(b, 16, 80) - fasta_checksums(a, 16, 80)
    assert len(expected) == 3
    plan = read_plan(wd / "results/chunks/plan.tsv")
    preds = [pq.read_table(Layout(wd / "results").store(release["fingerprint"]).chunk_outputs(f"{p.chunk:06d}").predictions)["checksum"].to_pylist() for p in plan]
    assert {c for p in preds for c in p} == expected and sum(map(len, preds)) == 3
    packages = sorted((wd / "results/logs/fold_package").glob("*.log"))
    assert len(plan) == 3 and [p.stem for p in packages] == [f"{plan[0].chunk:06d}", f"{plan[2].chunk:06d}"], "3 chunks in 2 packages"
    assert [len(p.bucket) for p in plan] == [1, 1, 1] and [p.bucket for p in plan] == sorted(p.bucket for p in plan)
    published_by = sorted(p.stem for p in (wd / "results/logs/publish_bucket").glob("*.log"))
    assert published_by == sorted(["all", *(f"{i:x}" for i in range(16))]), "release 1 in one bucket job, release 2 in 16"
    assert not list((wd / "results/release_parts").glob("*.json"))
    logs = "".join(p.read_text() for p in packages)
    assert sum(int(n) for n in re.findall(r"chunk \S+: \d+ sequences, \d+ already folded, (\d+) to fold", logs)) == 3, logs[-2000:]
    all_preds = [c for p in (wd / "results/store").glob("*/chunks/chunk_*/predictions.parquet") for c in pq.read_table(p)["checksum"].to_pylist()]
    assert len(all_preds) == len(set(all_preds)), "a checksum in two prediction files"
    summary = json.loads((wd / "results/atlas/summary.json").read_text())
    assert (summary["releases"][1]["new_sequences"], summary["releases"][1]["already_folded"]) == (3, len(folded_1))
    assert "Nothing to be done" not in out
    report = (wd / "results/report/atlas_report.html").read_text().split('<table id="releases">')[1].split("</table>")[0]
    assert report.count("<tr") == 3 and report.count('<tr class="this"><td>r0002</td>') == 1

    # another package size after publication: nothing is folded, the atlas stays
    mtimes = {p: p.stat().st_mtime_ns for p in (wd / "results/store").glob("*/chunks/chunk_*/*")}
    out = snakemake(wd, {**packaged, "fold": {**packaged["fold"], "chunks_per_job": 3}})
    assert "fold_package" not in out and "fold_chunk" not in out, out[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (wd / "results/store").glob("*/chunks/chunk_*/*")} == mtimes

    single = prepare(tmp_path / "single", {"ingest": {"max_length": 80}, "fold": {"max_batch_size": 1}})
    (single / "b.fa").write_bytes(b.read_bytes())
    snakemake(single, {**config, "input": {"fasta": [str(a.relative_to(wd)), "b.fa"]}})
    campaign, one = atlas_view(wd / "results"), atlas_view(single / "results")
    assert campaign["records"] == one["records"]
    assert campaign["high_confidence"] == one["high_confidence"]
    assert campaign["members"].keys() == one["members"].keys() and campaign["members"] == one["members"]


def test_bucket_files_are_written_from_a_stream_of_batches_that_cross_buckets(tmp_path):
    """A release's tables reach their checksum buckets one batch at a time: batches that
    end inside a bucket, one that spans several, and an empty one give the same files as
    the whole table; rows out of checksum order are refused, never written twice."""
    from foldatlas.errors import InternalError
    from foldatlas.store import _write_buckets
    from foldatlas.tables import KEYS_SCHEMA

    sums = sorted(hashlib.md5(str(k).encode()).hexdigest() for k in range(3000))
    table = pa.table({"checksum": sums, "chunk": pa.array(range(3000), pa.int32()), "length": pa.array([50] * 3000, pa.int32()), "release": ["r0001"] * 3000})
    whole = _write_buckets(table, tmp_path / "whole", KEYS_SCHEMA)
    batches = [*table.slice(0, 7).to_batches(), *table.slice(7, 0).to_batches(), *table.slice(7, 2000).to_batches(max_chunksize=333), *table.slice(2007).to_batches()]
    streamed = _write_buckets(iter(batches), tmp_path / "streamed", KEYS_SCHEMA)
    assert streamed == whole and whole["rows"] == 3000 and len(whole["buckets"]) == 256
    for bucket, entry in streamed["buckets"].items():
        t = pq.read_table(StoreLayout.bucket_file(tmp_path / "streamed", bucket))
        assert t.num_rows == entry["rows"] and {c[:2] for c in t["checksum"].to_pylist()} == {bucket}
        assert t["checksum"].to_pylist() == sorted(t["checksum"].to_pylist())
    shuffled = pa.concat_tables([table.slice(1500), table.slice(0, 1500)])
    with pytest.raises(InternalError, match=r"expected rows sorted by checksum, found bucket 00 after ff"):
        _write_buckets(shuffled, tmp_path / "shuffled", KEYS_SCHEMA)


def test_each_chunk_gets_the_count_and_digest_of_exactly_its_planned_checksums():
    """One aggregate gives every chunk its planned rows' count and digest (the seal's
    digest of the same checksums, whatever their order); a chunk without rows gets none
    (its predictions must be empty too); a row in a chunk of another release stops."""
    from foldatlas.errors import InternalError
    from foldatlas.seal import checksums_digest
    from foldatlas.store import _planned_digests

    con = duckdb.connect()
    con.register("rows", pa.table({"chunk": [9, 3, 3, 5, 9, 3], "checksum": ["f", "c", "a", "d", "e", "b"]}))
    got = _planned_digests(con, "rows", [9, 3, 4, 5, 11])
    assert got == {3: (3, checksums_digest(["b", "a", "c"])), 4: (0, checksums_digest([])), 5: (1, checksums_digest(["d"])), 9: (2, checksums_digest(["e", "f"])), 11: (0, checksums_digest([]))}
    with pytest.raises(InternalError, match=r"found one planned into chunk 000005"):
        _planned_digests(con, "rows", [3, 9])


def test_the_keys_of_shared_chunks_are_read_one_chunk_at_a_time_in_each_pass(tmp_path):
    """What the atlas takes from each shared chunk comes from a file sorted by chunk: a
    chunk split across batches is whole, a chunk without rows is empty, and a pass that
    starts over at an earlier chunk reads the file again from its start."""
    from foldatlas.errors import InternalError
    from foldatlas.store import SharedChunkKeys, _SharedKeys

    rows = pa.table({"chunk": pa.array([3, 3, 3, 5, 9, 9], pa.int64()), "checksum": ["a", "b", "c", "d", "e", "f"]})
    pq.write_table(rows, tmp_path / "keys.parquet", row_group_size=2)
    keys = _SharedKeys(tmp_path / "keys.parquet")
    keys._batches = pq.ParquetFile(tmp_path / "keys.parquet").iter_batches(batch_size=2)  # chunk 3 spans two batches
    want = {3: {"a", "b", "c"}, 4: set(), 5: {"d"}, 9: {"e", "f"}, 11: set()}
    assert {c: set(keys.get(c)) for c in (3, 4, 5, 9, 11)} == want
    assert set(keys.get(5)) == {"d"} and set(keys.get(9)) == {"e", "f"}  # a second pass
    only = SharedChunkKeys(9, keys)
    assert "e" in only and "a" not in only and sorted(only) == ["e", "f"] and len(only) == 2
    (tmp_path / "keys.parquet").unlink()  # the file is open: later passes read it still
    assert set(keys.get(3)) == {"a", "b", "c"}
    with pytest.raises(InternalError, match=r"expected the checksums taken from chunk 000004, found none"):
        "a" in SharedChunkKeys(4, keys)  # noqa: B015


def test_a_scratch_folder_that_is_a_symlink_is_emptied_where_it_points(tmp_path):
    """Scratch on a node's local disk (results/scratch/<step> a symlink): emptied, the
    link kept; a link to nothing is replaced by a folder."""
    from foldatlas.layout import fresh_dir

    local = tmp_path / "local"
    (local / "spill").mkdir(parents=True)
    (local / "spill" / "old.tmp").write_text("x")
    (local / "left.duckdb").write_text("x")
    link = tmp_path / "scratch" / "publish_release"
    link.parent.mkdir()
    link.symlink_to(local)
    assert fresh_dir(link) == link and link.is_symlink() and list(local.iterdir()) == []
    dangling = tmp_path / "scratch" / "plan_chunks"
    dangling.symlink_to(tmp_path / "gone")
    assert fresh_dir(dangling).is_dir() and not dangling.is_symlink()


def test_a_bucket_file_has_the_same_bytes_however_its_rows_were_batched(tmp_path):
    """Publishing the same release twice gives the same SHA-256 sums: a bucket of several
    data pages written from odd-sized batches equals the one written from the whole table."""
    import random

    from foldatlas.store import _write_buckets
    from foldatlas.tables import STORE_SEQUENCES_SCHEMA

    rng = random.Random(7)
    sums = sorted("ab" + hashlib.md5(str(k).encode()).hexdigest()[2:] for k in range(20000))
    table = pa.table({"checksum": sums, "sequence": ["".join(rng.choices(AA, k=200)) for _ in sums]})
    whole = _write_buckets(table, tmp_path / "whole", STORE_SEQUENCES_SCHEMA)
    odd = _write_buckets(iter(table.to_batches(max_chunksize=777)), tmp_path / "odd", STORE_SEQUENCES_SCHEMA)
    assert pq.ParquetFile(StoreLayout.bucket_file(tmp_path / "whole", "ab")).metadata.row_group(0).total_byte_size > 2**20  # pages
    assert odd == whole and list(whole["buckets"]) == ["ab"]


def bucketed_release(tmp: Path, seqs: list[str]) -> tuple[StoreLayout, dict]:
    """A fresh store with one chunk per checksum bucket (first hex digit) of ``seqs``,
    folded, and a plan split into 16 buckets (chunks.bucket_digits 1), as plan_chunks
    writes it: chunks numbered in bucket order."""
    store = Layout(tmp / "results").store("f" * 16)
    by_bucket: dict[str, list[str]] = {}
    for s in sorted(seqs, key=lambda s: sequence_checksum(s.encode())):
        by_bucket.setdefault(sequence_checksum(s.encode())[0], []).append(s)
    chunk_of, buckets = {}, []
    for no, (b, held) in enumerate(sorted(by_bucket.items())):
        make_chunk(store.dir / "chunks", no, held)
        chunk_of.update({s: no for s in held})
        buckets.append(b)
    rel, _ = plan_release(store, "", KEY)
    (tmp / "plan").mkdir()
    plan = tmp / "plan" / RELEASE_FILE
    plan.write_text(json.dumps({**rel.__dict__, "chunks": list(range(len(buckets))), "bucket_digits": 1, "buckets": buckets}))
    ordered = sorted(seqs, key=lambda s: sequence_checksum(s.encode()))
    sequences = write_sequences(tmp / "seq.parquet", ordered, [chunk_of[s] for s in ordered], ["r0001"] * len(seqs))
    inputs = write_inputs(tmp / "in.json", {"a.fa": len(seqs)})
    return store, {"planned": plan, "sequences": sequences, "inputs": inputs}


def release_files(store: StoreLayout, name: str) -> dict[str, bytes]:
    return {str(p.relative_to(store.release_dir(name))): p.read_bytes() for p in store.release_dir(name).rglob("*") if p.is_file() and p.name != RELEASE_FILE}


def test_a_release_is_published_one_bucket_at_a_time_each_job_reading_only_its_chunks(tmp_path):
    """The workflow's jobs (publish_bucket for each bucket in any order, then
    finish_release) publish the same release as the one call, byte for byte; a bucket's
    job reads only its own chunks, so a damaged chunk stops its bucket and no other."""
    from foldatlas.store import finish_release, publish_bucket, release_buckets

    seqs = SEQS + ["".join(AA[(i * 3 + j * 11) % 20] for j in range(25 + i)) for i in range(30)]
    one, args = bucketed_release(tmp_path / "one", seqs)
    publish_release(one, **args, receipt=tmp_path / "one/receipt.json")
    split, args = bucketed_release(tmp_path / "split", seqs)
    buckets = release_buckets(args["planned"])
    assert buckets == [f"{i:x}" for i in range(16)]
    plan = json.loads(args["planned"].read_text())
    damaged = plan["chunks"][plan["buckets"].index("3")]
    os.unlink(split.chunk_outputs(f"{damaged:06d}").structures)
    parts = {b: tmp_path / f"parts/{b}.json" for b in buckets}
    for b in reversed(buckets):
        if b == "3":
            with pytest.raises(StaleOutputError, match=rf"chunk_{damaged:06d}/structures.tar: missing: chunk {damaged:06d} of this release has not been folded"):
                publish_bucket(split, b, **args, part=parts[b])
            continue
        publish_bucket(split, b, **args, part=parts[b])
    with pytest.raises(StaleOutputError, match=r"expected a staged part for each of the plan's 16 buckets, found 15 \(missing: 3;"):
        finish_release(split, **args, parts=[p for p in parts.values() if p.exists()], receipt=tmp_path / "split/receipt.json")
    assert read_manifest(split)["generation"] == 0, "nothing published"
    make_chunk(split.dir / "chunks", damaged, [s for s in seqs if sequence_checksum(s.encode())[0] == "3"])
    publish_bucket(split, "3", **args, part=parts["3"])
    record = finish_release(split, **args, parts=list(parts.values()), receipt=tmp_path / "split/receipt.json")
    assert release_files(split, "r0001") == release_files(one, "r0001")
    same = json.loads(one.release_file("r0001").read_text())
    assert {k: v for k, v in record.items() if k != "created"} == {k: v for k, v in same.items() if k != "created"}
    assert verify_release(split, "r0001") == []
    assert not (split.dir / "publishing").exists() or not any((split.dir / "publishing").iterdir()), "the staging is removed once published"
    # a rerun of every job: acknowledged, nothing written
    before = {p: p.read_bytes() for p in split.dir.rglob("*") if p.is_file()}
    for b in buckets:
        assert publish_bucket(split, b, **args, part=parts[b]) == {"bucket": b, "published": "r0001"}
    assert finish_release(split, **args, parts=list(parts.values()), receipt=tmp_path / "split/receipt.json") == record
    assert {p: p.read_bytes() for p in split.dir.rglob("*") if p.is_file()} == before


def test_finishing_refuses_staged_parts_it_cannot_vouch_for(tmp_path):
    from foldatlas.store import finish_release, publish_bucket, release_buckets

    store, args = bucketed_release(tmp_path, SEQS)
    parts = [tmp_path / f"parts/{b}.json" for b in release_buckets(args["planned"])]
    for part in parts:
        publish_bucket(store, part.stem, **args, part=part)
    finish = lambda: finish_release(store, **args, parts=parts, receipt=tmp_path / "receipt.json")  # noqa: E731
    part = next(rec for rec in (json.loads(p.read_text()) for p in parts) if rec["keys"]["buckets"])
    bucket = next(iter(part["keys"]["buckets"]))
    staged = StoreLayout.bucket_file(store.release_staging("r0001", part["plan"], part["bucket"]) / "keys", bucket)
    kept = staged.read_bytes()
    staged.write_bytes(kept[::-1])  # as long as it was: another file all the same
    with pytest.raises(StaleOutputError, match=rf"{re.escape(str(staged))}: expected the file its bucket job staged \({len(kept)} bytes\), found a file of {len(kept)} bytes that is not the one staged"):
        finish()
    staged.unlink()
    with pytest.raises(StaleOutputError, match=rf"found nothing: delete {re.escape(str(tmp_path))}/parts/{part['bucket']}.json to stage the bucket again"):
        finish()
    assert read_manifest(store)["generation"] == 0 and not store.release_dir("r0001").exists()
    other = json.loads(parts[1].read_text())
    parts[1].write_text(json.dumps({**other, "release": "r0009"}))
    with pytest.raises(StaleOutputError, match=rf"{re.escape(str(parts[1]))}: expected the staged files of release r0001 of plan \w{{16}}, found release r0009"):
        finish()
    with pytest.raises(StaleOutputError, match=r"expected one of the plan's 16 buckets \(0, 1, 2\.\.\.\), found 'all'"):
        publish_bucket(store, "all", **args, part=tmp_path / "all.json")
    # staged again, it publishes
    for part in parts:
        publish_bucket(store, part.stem, **args, part=part)
    finish()
    assert read_manifest(store)["generation"] == 1 and verify_release(store, "r0001") == []


def test_two_plans_of_one_release_name_never_share_their_staged_files(tmp_path):
    """Two runs planned release r0001 at the same generation (the second with its chunks
    numbered after the first's): each stages under its own plan, the first to finish
    publishes exactly its own chunks, and the other is told to plan again."""
    import shutil

    from foldatlas.store import finish_release, publish_bucket, release_buckets

    store, a = bucketed_release(tmp_path, SEQS)
    rec = json.loads(a["planned"].read_text())
    shift = len(rec["chunks"])
    for c in rec["chunks"]:  # run B folded the same sequences into its own chunk folders
        shutil.copytree(store.dir / f"chunks/chunk_{c:06d}", store.dir / f"chunks/chunk_{c + shift:06d}")
        (store.dir / f"chunks/chunk_{c + shift:06d}/index.parquet").unlink(missing_ok=True)
    (tmp_path / "plan-b").mkdir()
    b = {**a, "planned": tmp_path / "plan-b" / RELEASE_FILE, "sequences": tmp_path / "seq-b.parquet"}
    b["planned"].write_text(json.dumps({**rec, "first_chunk": shift, "chunks": [c + shift for c in rec["chunks"]]}))
    seqs = pq.read_table(a["sequences"])
    write_table(seqs.set_column(seqs.schema.get_field_index("chunk"), "chunk", pa.array([c + shift for c in seqs["chunk"].to_pylist()], pa.int32())), b["sequences"], SEQUENCES_SCHEMA)
    parts = {run: [tmp_path / f"parts-{run}/{k}.json" for k in release_buckets(args["planned"])] for run, args in (("a", a), ("b", b))}
    for part_a, part_b in zip(parts["a"], parts["b"]):  # interleaved, as two runs' jobs would be
        publish_bucket(store, part_a.stem, **a, part=part_a)
        publish_bucket(store, part_b.stem, **b, part=part_b)
    staged = sorted(p.name for p in (store.dir / "publishing").iterdir())
    assert len(staged) == 2 and all(s.startswith("r0001.") for s in staged), staged
    finish_release(store, **a, parts=parts["a"], receipt=tmp_path / "a.json")
    keys = pq.read_table(store.release_keys("r0001"))
    assert sorted(set(keys["chunk"].to_pylist())) == rec["chunks"], "the release points at run A's chunks only"
    assert verify_release(store, "r0001") == []
    assert [p.name for p in (store.dir / "publishing").iterdir()] == [s for s in staged if s != f"r0001.{json.loads(parts['a'][0].read_text())['plan']}"], "A removes only its own staging"
    with pytest.raises(StaleOutputError, match=r"the store gained releases since this run planned release r0001 \(generation 0, now 1\)"):
        finish_release(store, **b, parts=parts["b"], receipt=tmp_path / "b.json")
