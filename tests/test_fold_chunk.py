"""fold_chunk end to end on the tiny model: outputs, accounting, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, save_tiny_weights
from foldatlas.archive import check_block, read_member, read_structure_archive
from foldatlas.fasta import sequence_checksum
from foldatlas.layout import ChunkOutputs
from foldatlas.model import load_folding_model, weights_checksum
from foldatlas.seal import checksums_digest, file_checksum, read_seal
from foldatlas.tables import CHUNK_SCHEMA, PREDICTIONS_SCHEMA, decompress_pae

FOLD = {
    "model": "tiny", "device": "cpu", "num_recycles": 1, "max_tokens_per_batch": 4096, "max_batch_size": 3,
    "save_pae": True, "commit_seconds": 0, "progress_seconds": 0, "threads": 1,
}  # fmt: skip
EMB = {"layers": [-1, 0]}


def make_chunk(path: Path, seqs: list[str]) -> list[str]:
    seqs = sorted(set(seqs), key=lambda s: (len(s), sequence_checksum(s.encode())))
    checksums = [sequence_checksum(s.encode()) for s in seqs]
    t = pa.table({"checksum": checksums, "sequence": seqs, "length": [len(s) for s in seqs], "est_seconds": [1.0] * len(seqs)}, schema=CHUNK_SCHEMA)
    pq.write_table(t, path)
    return checksums


def outputs(folder: Path) -> ChunkOutputs:
    return ChunkOutputs(0, folder / "predictions.parquet", folder / "embeddings.parquet", folder / "structures.tar")


def run_job(chunk: Path, out: Path, partial: Path, *, faults: dict | None = None, fold: dict | None = None, env: dict | None = None) -> subprocess.Popen:
    code = (
        "import json, sys\n"
        "from foldatlas.fold import fold_chunk_job\n"
        "from pathlib import Path\n"
        "from foldatlas.layout import ChunkOutputs\n"
        "from foldatlas.logs import setup_logging\n"
        "from foldatlas.settings import EmbeddingSettings, FoldSettings\n"
        "setup_logging(None)\n"
        "a = json.loads(sys.argv[1])\n"
        "out = ChunkOutputs(0, *(Path(a['out']) / n for n in ('predictions.parquet', 'embeddings.parquet', 'structures.tar')))\n"
        "fold_chunk_job(a['chunk'], out, a['partial'],\n"
        "               fold=FoldSettings.from_config(a['fold']), embeddings=EmbeddingSettings.from_config(a['emb']))\n"
    )
    args = {"chunk": str(chunk), "out": str(out), "partial": str(partial), "fold": fold or FOLD, "emb": EMB}
    environ = {**os.environ, **(env or {})}
    if faults:
        environ["FOLDATLAS_INJECT_FAULTS"] = json.dumps(faults)
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], env=environ, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, demo_sequences):
    """An uninterrupted run over 12 sequences, in a job that was allocated a GPU (as
    Slurm's test jobs are) but told fold.device: cpu."""
    tmp = tmp_path_factory.mktemp("ref")
    chunk = tmp / "chunk_000000.parquet"
    checksums = make_chunk(chunk, demo_sequences[:12])
    proc = run_job(chunk, tmp / "out", tmp / "partial", env={"CUDA_VISIBLE_DEVICES": "0"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return chunk, checksums, tmp / "out", err


def test_outputs_account_for_every_sequence(reference):
    chunk, checksums, out, log = reference
    preds = pq.read_table(out / "predictions.parquet")
    assert preds.schema.equals(PREDICTIONS_SCHEMA, check_metadata=False)
    assert preds["checksum"].to_pylist() == checksums  # chunk order, each once
    assert set(preds["status"].to_pylist()) == {"ok"}
    assert set(preds["model_id"].to_pylist()) == {"tiny-random-esmfold-seed0"}
    # provenance: precision, TF32, device and the weights' content identity
    tiny = load_folding_model("tiny", device="cpu")
    assert set(zip(*(preds[c].to_pylist() for c in ("lm_precision", "tf32", "device", "weights_checksum")))) == {
        ("fp32", False, "cpu", tiny.weights_checksum)
    }
    emb = pq.read_table(out / "embeddings.parquet")
    assert sorted(zip(emb["checksum"].to_pylist(), emb["layer"].to_pylist())) == sorted((c, k) for c in checksums for k in (2, 0))
    assert emb.schema.field("embedding").type.list_size == 64
    archive = read_structure_archive(out / "structures.tar")
    assert sorted(archive) == sorted(f"{c}.pdb" for c in checksums)
    assert preds["member"].to_pylist() == [f"{c}.pdb.gz" for c in checksums]
    # every structure's tar entry is at its recorded byte range; the ranges tile the archive
    ranges = sorted(zip(preds["archive_offset"].to_pylist(), preds["archive_length"].to_pylist(), preds["member"].to_pylist()))
    assert ranges[0][0] == 0 and all(a + n == b for (a, n, _), (b, _, _) in zip(ranges, ranges[1:]))
    data = (out / "structures.tar").read_bytes()
    located = {}
    for offset, length, member in ranges:
        (entry,) = check_block(data[offset : offset + length], member[:32])
        assert read_member(out / "structures.tar", offset + entry.data_start, entry.data_length, expect=member).decode() == archive[member.removesuffix(".gz")]
        located[member] = (offset + entry.data_start, entry.data_length)
    # the job's seal, written last: each file's SHA-256 and every structure's data range
    seal = read_seal(outputs(out))
    assert seal is not None and seal.sequences == 12 and seal.checksums_sha256 == checksums_digest(reversed(checksums))
    assert seal.release_files() == {f: file_checksum(out / n) for f, n in (("predictions", "predictions.parquet"), ("embeddings", "embeddings.parquet"), ("structures", "structures.tar"))}
    index = pq.read_table(out / "index.parquet")
    assert {m: (o, n) for m, o, n in zip(*(index[c].to_pylist() for c in ("member", "data_offset", "data_length")))} == located
    assert set(index["archive"].to_pylist()) == {f"{out.parent.name}/out/structures.tar"} and set(index["chunk"].to_pylist()) == {0}
    row = preds.slice(0, 1).to_pylist()[0]
    pae = decompress_pae(row["pae"], row["length"])
    assert pae.shape == (row["length"],) * 2 and float(pae.max()) == pytest.approx(row["max_pae"], abs=0.02)
    assert len(row["residue_plddt"]) == row["length"]
    assert "12/12 sequences" in log and "ETA" in log
    assert not (out.parent / "partial").exists()


def test_archive_bytes_are_reproducible(reference, tmp_path):
    chunk, _, out, _ = reference
    proc = run_job(chunk, tmp_path / "out", tmp_path / "partial")
    assert proc.wait(timeout=300) == 0
    assert (tmp_path / "out/structures.tar").read_bytes() == (out / "structures.tar").read_bytes()


def test_killed_job_resumes_without_refolding_or_losing(reference, tmp_path):
    chunk, checksums, ref_out, _ = reference
    partial = tmp_path / "partial"
    proc = run_job(chunk, tmp_path / "out", partial, faults={"sleep_seconds": 0.5})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(partial.glob("seg_*.predictions.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = list(partial.glob("seg_*.predictions.parquet"))
    assert len(committed) >= 2, "the job ended before it was killed"
    assert not (tmp_path / "out/predictions.parquet").exists()  # nothing that looks finished
    done = set()
    for p in committed:
        done.update(pq.read_table(p)["checksum"].to_pylist())
    assert 0 < len(done) < len(checksums)
    # rerun; folding any already committed sequence again would record it as an error
    proc = run_job(chunk, tmp_path / "out", partial, faults={"error_checksums": sorted(done)})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{len(done)} already folded" in err
    got = pq.read_table(tmp_path / "out/predictions.parquet")
    ref = pq.read_table(ref_out / "predictions.parquet")
    assert got["checksum"].to_pylist() == ref["checksum"].to_pylist()
    assert set(got["status"].to_pylist()) == {"ok"}
    np.testing.assert_allclose(got["plddt"].to_numpy(), ref["plddt"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(got["ptm"].to_numpy(), ref["ptm"].to_numpy(), atol=1e-3)
    a, b = read_structure_archive(tmp_path / "out/structures.tar"), read_structure_archive(ref_out / "structures.tar")
    assert list(a) == list(b)
    for name in a:
        xa = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in a[name].splitlines() if ln.startswith("ATOM")])
        xb = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in b[name].splitlines() if ln.startswith("ATOM")])
        np.testing.assert_allclose(xa, xb, atol=0.05)  # batch composition differs after a resume: float32 rounding
    assert not partial.exists()


def test_a_job_killed_before_its_seal_is_sealed_by_the_next_without_folding(reference, tmp_path):
    """A SIGKILL after the three outputs and before their seal: the next job finds the
    chunk complete, seals it and folds nothing (its model still loads)."""
    chunk, checksums, ref_out, _ = reference
    out = tmp_path / "out"
    proc = run_job(chunk, out, tmp_path / "partial", faults={"kill_at": "before_seal"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL and "SIGKILL at before_seal" in err
    assert (out / "predictions.parquet").exists() and not (out / "index.parquet").exists()
    kept = (out / "predictions.parquet").stat().st_mtime_ns
    proc = run_job(chunk, out, tmp_path / "partial", faults={"error_checksums": checksums})  # folding any would record an error
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "sealing it now" in err and (out / "predictions.parquet").stat().st_mtime_ns == kept
    seal = read_seal(outputs(out))
    assert seal is not None and seal.sequences == seal.structures == 12
    columns = ["checksum", "member", "data_offset", "data_length"]  # as the uninterrupted job's (its archive's path differs)
    assert pq.read_table(out / "index.parquet", columns=columns).equals(pq.read_table(ref_out / "index.parquet", columns=columns))


def test_uncommitted_segment_files_are_discarded(reference, tmp_path):
    chunk, checksums, _, _ = reference
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "seg_000001.structures.parquet").write_bytes(b"half-written")
    (partial / ".seg_000001.predictions.parquet.tmp-99").write_bytes(b"junk")
    proc = run_job(chunk, tmp_path / "out", partial)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "0 already folded" in err
    assert pq.read_table(tmp_path / "out/predictions.parquet").num_rows == len(checksums)


def test_changed_settings_discard_partial_results(reference, tmp_path):
    chunk, checksums, _, _ = reference
    partial = tmp_path / "partial"
    proc = run_job(chunk, tmp_path / "out", partial, faults={"sleep_seconds": 0.5})
    assert _kill_after_first_commit(proc, partial)
    proc = run_job(chunk, tmp_path / "out", partial, fold=dict(FOLD, num_recycles=0))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "made with other settings (settings:" in err and "discarding them" in err and "0 already folded" in err
    assert set(pq.read_table(tmp_path / "out/predictions.parquet")["num_recycles"].to_pylist()) == {0}


def test_oom_and_errors_recorded_in_outputs(reference, tmp_path):
    chunk, checksums, _, _ = reference
    longest = max(pq.read_table(chunk)["length"].to_pylist())
    faults = {"oom_min_length": longest, "oom_max_chunk_size": 0, "error_checksums": [checksums[0]]}
    proc = run_job(chunk, tmp_path / "out", tmp_path / "partial", faults=faults)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    preds = pq.read_table(tmp_path / "out/predictions.parquet").to_pylist()
    assert len(preds) == len(checksums)
    status = {p["checksum"]: p["status"] for p in preds}
    assert status[checksums[0]] == "error" and status[checksums[-1]] == "oom"
    assert sum(s == "ok" for s in status.values()) == len(checksums) - 2
    failed = [p for p in preds if p["status"] != "ok"]
    assert all(p["member"] is None and p["plddt"] is None and p["error"] for p in failed)
    archive = read_structure_archive(tmp_path / "out/structures.tar")
    assert len(archive) == len(checksums) - 2


def _kill_after_first_commit(proc: subprocess.Popen, partial: Path) -> set[str]:
    """Wait for a committed segment, SIGKILL the job, return the committed checksums."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(partial.glob("seg_*.predictions.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {c for p in partial.glob("seg_*.predictions.parquet") for c in pq.read_table(p)["checksum"].to_pylist()}


def test_resume_with_other_weights_starts_the_chunk_afresh(reference, tmp_path):
    """Weights A killed mid-chunk, resumed with weights B (same model id, revision
    "local"): nothing folded with A survives, and every prediction names B."""
    chunk, checksums, _, _ = reference
    a, b = save_tiny_weights(tmp_path / "a", seed=1), save_tiny_weights(tmp_path / "b", seed=2)
    partial, out = tmp_path / "partial", tmp_path / "out"
    proc = run_job(chunk, out, partial, faults={"sleep_seconds": 0.5}, fold=dict(FOLD, model="esmfold_v1", weights=str(a)))
    done_a = _kill_after_first_commit(proc, partial)
    assert 0 < len(done_a) < len(checksums), "the job ended before it was killed"
    seg_a = {r["checksum"]: r for p in partial.glob("seg_*.predictions.parquet") for r in pq.read_table(p).to_pylist()}
    proc = run_job(chunk, out, partial, fold=dict(FOLD, model="esmfold_v1", weights=str(b)))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "folding the chunk afresh" in err and "weights_checksum" in err and "0 already folded" in err
    preds = pq.read_table(out / "predictions.parquet").to_pylist()
    assert [p["checksum"] for p in preds] == checksums
    assert {p["weights_checksum"] for p in preds} == {weights_checksum(b)} != {weights_checksum(a)}
    assert {p["model_id"] for p in preds} == {"facebook/esmfold_v1"} and {p["model_version"] for p in preds} == {"local"}
    for p in preds:  # B's own numbers, not A's carried over
        if p["checksum"] in seg_a:
            assert p["weights_checksum"] != seg_a[p["checksum"]]["weights_checksum"]
            assert p["plddt"] != pytest.approx(seg_a[p["checksum"]]["plddt"], abs=1e-6)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
def test_gpu_job_without_cuda_stops_at_once(reference, tmp_path):
    chunk, _, _, _ = reference
    proc = run_job(chunk, tmp_path / "out", tmp_path / "partial", fold=dict(FOLD, device="auto"), env={"SLURM_JOB_GPUS": "0"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "SLURM_JOB_GPUS=0" in err and "CPU-only build" in err and "fold.device: cpu" in err
    assert not (tmp_path / "partial").exists()  # nothing folded


def test_a_fold_package_loads_the_model_once_and_skips_chunks_folded_before(tmp_path, demo_sequences, monkeypatch, caplog):
    """fold.chunks_per_job: one job folds its chunks in turn with one model load; run
    again after losing one chunk's outputs, it folds that chunk only."""
    import logging

    import foldatlas.model
    from foldatlas.fold import fold_package_job
    from foldatlas.settings import EmbeddingSettings, FoldSettings

    loads = []
    real = foldatlas.model.load_folding_model
    monkeypatch.setattr(foldatlas.model, "load_folding_model", lambda *a, **k: loads.append(1) or real(*a, **k))
    short = sorted(set(demo_sequences), key=lambda s: (len(s), s))[:6]
    jobs = []
    for k in range(2):
        chunk = tmp_path / f"chunk_00000{k}.parquet"
        make_chunk(chunk, short[3 * k : 3 * k + 3])
        jobs.append((chunk, outputs(tmp_path / f"out{k}"), tmp_path / f"partial{k}"))
        (tmp_path / f"out{k}").mkdir()
    settings = {"fold": FoldSettings.from_config(FOLD), "embeddings": EmbeddingSettings.from_config(EMB), "outputs_key": "key"}
    counts = fold_package_job(jobs, **settings)
    assert loads == [1] and counts == [{"ok": 3}, {"ok": 3}]
    first = [pq.read_table(j[1].predictions)["checksum"].to_pylist() for j in jobs]
    kept = jobs[0][1].predictions.stat().st_mtime_ns
    assert all(read_seal(j[1]) is not None for j in jobs)
    jobs[1][1].structures.unlink()
    jobs[0][1].index.unlink()  # folded, not sealed (killed before its seal, or by foldatlas < 0.6)
    with caplog.at_level(logging.INFO, logger="foldatlas"):
        assert fold_package_job(jobs, **settings) == [{"ok": 3}, {"ok": 3}]
    assert jobs[0][1].predictions.stat().st_mtime_ns == kept and "folded already by an earlier attempt" in caplog.text
    assert "sealing it now" in caplog.text and all(read_seal(j[1]) is not None for j in jobs)
    assert [pq.read_table(j[1].predictions)["checksum"].to_pylist() for j in jobs] == first and jobs[1][1].structures.exists()
    # outputs made under other settings are folded again, not taken
    assert fold_package_job(jobs[:1], **{**settings, "outputs_key": "other"}) == [{"ok": 3}]
    assert jobs[0][1].predictions.stat().st_mtime_ns != kept
