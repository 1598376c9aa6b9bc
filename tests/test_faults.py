"""Faults: SIGKILLed fold jobs, write failures, concurrent runs, hostile archives and weights."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from foldatlas.archive import IndexEntry, extract_structure, iter_tar_members, read_member
from foldatlas.errors import FoldatlasError
from test_workflow import prepare, run

pytestmark = pytest.mark.workflow
#: (kill point, hit) of a fold job: while loading the model, after its second committed
#: segment, after the second entry of its archive, between the archive and the tables
KILL_POINTS = (("model_load", 1), ("segment_committed", 2), ("archive_entry", 2), ("between_outputs", 1))
# several batches per chunk, so a kill can fall between them; chains up to 120 residues
# (the longer demo records are recorded too_long): the tiny model folds them in a third of the time
SMALL_BATCHES = {"fold": {"max_batch_size": 3}, "ingest": {"max_length": 120}}


def workflow(wd: Path, *extra: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", *extra]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=env, timeout=timeout)


def snapshot(wd: Path) -> dict:
    meta = pq.read_table(wd / "results/atlas/metadata.parquet").to_pylist()
    index = pq.read_table(wd / "results/atlas/structures/index.parquet").to_pylist()
    counts = json.loads((wd / "results/atlas/summary.json").read_text())["counts"]
    return {
        "rows": [(r["source_index"], r["record_index"], r["status"], r["checksum"], r["high_confidence"]) for r in meta],
        "plddt": np.array([r["plddt"] or 0.0 for r in meta]),
        "members": sorted((r["collection"], r["member"]) for r in index),
        "counts": counts,
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    wd = prepare(tmp_path_factory.mktemp("ref"), SMALL_BATCHES)
    res = workflow(wd)
    assert res.returncode == 0, res.stderr[-3000:]
    return snapshot(wd)


@pytest.mark.parametrize("point, hit", KILL_POINTS)
def test_sigkill_of_a_fold_job_then_rerun_equals_uninterrupted(point, hit, reference, tmp_path):
    wd = prepare(tmp_path, SMALL_BATCHES)
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"kill_at": point, "kill_after": hit}))
    res = workflow(wd, env=env)
    assert res.returncode != 0, "the killed job should fail the run"
    assert "Error in rule fold_chunk" in res.stdout + res.stderr
    assert not (wd / "results/atlas/metadata.parquet").exists()
    logs = "".join(p.read_text() for p in (wd / "results/logs/fold_chunk").glob("*.log"))
    assert f"SIGKILL at {point}" in logs
    partial_before = sorted(p.name for p in (wd / "results/fold/partial").rglob("seg_*.predictions.parquet")) if (wd / "results/fold/partial").exists() else []
    res = workflow(wd)
    assert res.returncode == 0, res.stderr[-3000:]
    got = snapshot(wd)
    assert got["rows"] == reference["rows"]
    assert got["members"] == reference["members"]
    assert got["counts"] == reference["counts"]
    np.testing.assert_allclose(got["plddt"], reference["plddt"], atol=1e-3)
    if point == "segment_committed":
        assert partial_before, "a mid-chunk kill should leave committed segments"
        logs = "".join(p.read_text() for p in (wd / "results/logs/fold_chunk").glob("*.log"))
        assert "already folded" in logs and not all(" 0 already folded" in ln for ln in logs.splitlines() if "already folded" in ln)


def test_write_failure_leaves_nothing_that_looks_finished(tmp_path):
    """A write that fails mid-file (file-size limit: EFBIG, as a full disk gives ENOSPC)."""
    code = (
        "import resource, signal, sys\n"
        "import pyarrow as pa\n"
        "from foldatlas.tables import write_table\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "t = pa.table({'x': [str(i) * 50 for i in range(100_000)]})\n"
        f"write_table(t, {str(tmp_path / 'out.parquet')!r}, t.schema, compression='none')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0 and "File too large" in res.stderr
    assert list(tmp_path.iterdir()) == [], "a temporary or partial file was left behind"


def test_unwritable_results_folder_fails_clearly(tmp_path):
    wd = prepare(tmp_path)
    (wd / "results").write_text("not a folder")
    res = workflow(wd, timeout=300)
    assert res.returncode != 0
    assert "results" in res.stdout + res.stderr


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    wd = prepare(tmp_path, {"ingest": {"max_length": 120}})  # short chains: the lock, not the folding, is tested
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"sleep_seconds": 1.0}))
    first = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"],
                             cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((wd / ".snakemake/locks").glob("*")) if (wd / ".snakemake/locks").exists() else True:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.2)
    second = workflow(wd, timeout=300)
    out, _ = first.communicate(timeout=900)
    assert second.returncode != 0
    # refused by the lock; or, when it starts just as a job of the first run has written
    # its outputs but not yet marked them complete, by Snakemake's check of incomplete
    # outputs (it comes before the lock: seen once Snakemake started in 2 s, not 10)
    said = (second.stdout + second.stderr).lower()
    assert "lock" in said or "incomplete files" in said, said[-2000:]
    assert first.returncode == 0, out[-3000:]
    assert json.loads((wd / "results/atlas/accounting.json").read_text())["ok"]


def test_hostile_archive_members_are_never_extracted(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in ("../outside.pdb", "/tmp/foldatlas-absolute.pdb", "a/../../up.pdb"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"ATOM"))
    names = [n for n, _ in iter_tar_members(evil)]
    assert names == ["../outside.pdb", "/tmp/foldatlas-absolute.pdb", "a/../../up.pdb"]
    assert not (tmp_path.parent / "outside.pdb").exists() and not Path("/tmp/foldatlas-absolute.pdb").exists()
    # an index entry pointing at such a member: the name is checked, the output name is the checksum's
    comp = gzip.compress(b"ATOM")
    info = tarfile.TarInfo("../outside.pdb.gz")
    info.size = len(comp)
    shard = tmp_path / "shard.tar"
    shard.write_bytes(info.tobuf() + comp + b"\0" * (-len(comp) % 512))
    entry = IndexEntry("0" * 32, "shard.tar", "0" * 32 + ".pdb.gz", 512, len(comp), 4)
    with pytest.raises(ValueError, match="expected member"):
        extract_structure(shard, entry, tmp_path / "out")
    with pytest.raises(ValueError, match="expected a 32-digit"):
        extract_structure(shard, IndexEntry("../../x", "s", "../../x.pdb.gz", 512, len(comp), 4), tmp_path / "out")
    assert read_member(shard, 512, len(comp)) == b"ATOM"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('FOLDATLAS_TEST_MARKER', '/tmp/foldatlas-pwned')}",))


def test_pickled_weights_are_refused_without_running_them(tmp_path):
    from foldatlas.model import ModelWeightsError, load_folding_model, tiny_esmfold_config

    folder = tmp_path / "weights"
    folder.mkdir()
    tiny_esmfold_config().to_json_file(folder / "config.json")
    marker = tmp_path / "pwned"
    os.environ["FOLDATLAS_TEST_MARKER"] = str(marker)
    try:
        with open(folder / "pytorch_model.bin", "wb") as fh:
            pickle.dump({"weight": _Boom()}, fh)
        with pytest.raises(ModelWeightsError, match="could not be loaded safely|not found"):
            load_folding_model("esmfold_v1", weights=str(folder), device="cpu")
    finally:
        del os.environ["FOLDATLAS_TEST_MARKER"]
    assert not marker.exists(), "unpickling ran code from the weights file"


def test_missing_weights_say_where_they_were_looked_for(tmp_path):
    code = (
        "from foldatlas.model import load_folding_model\n"
        "load_folding_model('esmfold_v1', device='cpu')\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0
    assert "ESMFold weights not found. Looked in:" in res.stderr and str(tmp_path / "hf") in res.stderr
    assert "make weights" in res.stderr


def test_fault_env_is_a_testing_hook_only():
    from foldatlas.faults import FaultPlan

    assert FaultPlan.from_env({}).kill_at is None
    with pytest.raises(FoldatlasError, match="unknown keys"):
        FaultPlan.from_env({"FOLDATLAS_INJECT_FAULTS": '{"unknown": 1}'})


# -- temporary files after a kill (issue 13): the next run of the same step removes them --

#: Runs one ingest step on a results tree ``root`` (argv: step, root); small blocks and
#: chunks, so the step writes several batches and chunk files before it ends.
INGEST_STEP = """
import sys
from pathlib import Path
from foldatlas import fasta
from foldatlas.chunking import plan_chunks
from foldatlas.ingest import read_fasta_file
from foldatlas.layout import Layout
from foldatlas.settings import ChunkSettings, IngestSettings

step, root = sys.argv[1], Path(sys.argv[2])
layout = Layout(root)
fasta._BLOCK = 4096
if step == "read_fasta":
    read_fasta_file(root / "in.fa", layout.ingest_part("0"), source="in.fa", source_index=0,
                    settings=IngestSettings.from_config({}), workers=1, count_out=layout.ingest_count("0"))
else:
    plan_chunks([layout.ingest_part("0")], records_out=layout.records, sequences_out=layout.sequences,
                chunks_dir=layout.chunks, settings=ChunkSettings.from_config({"gpu_seconds": 2.0}), memory_gb=0.2,
                scratch_dir=layout.scratch("plan_chunks"), counts=[layout.ingest_count("0")], inputs_out=layout.inputs)
"""


def _ingest_step(step: str, root: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"kill_at": kill_at, "kill_after": 2})) if kill_at else None
    return subprocess.run([sys.executable, "-c", INGEST_STEP, step, str(root)], capture_output=True, text=True, env=env, timeout=300)


def _leftovers(root: Path) -> list[str]:
    """Temporary files and folders of atomic writes, and scratch space, under ``root``."""
    tmp = [p for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    scratch = [p for p in (root / "scratch").rglob("*")] if (root / "scratch").exists() else []
    return sorted(str(p.relative_to(root)) for p in tmp + scratch)


@pytest.fixture()
def ingest_root(tmp_path):
    rng = np.random.default_rng(7)
    aa = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
    with open(tmp_path / "in.fa", "wb") as fh:
        for i in range(3000):
            fh.write(b">r%d\n%s\n" % (i, rng.choice(aa, int(rng.integers(20, 300))).tobytes()))
    return tmp_path


def test_sigkill_of_read_fasta_leaves_a_temporary_part_that_the_rerun_removes(ingest_root):
    res = _ingest_step("read_fasta", ingest_root, kill_at="read_fasta_batch")
    assert res.returncode == -9, res.stderr[-2000:]
    assert [p for p in _leftovers(ingest_root) if p.startswith("ingest/parts/.0.parquet.tmp-")], "the kill should leave a half-written part"
    res = _ingest_step("read_fasta", ingest_root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _leftovers(ingest_root) == []
    assert pq.ParquetFile(ingest_root / "ingest/parts/0.parquet").metadata.num_rows == 3000


def test_sigkill_of_plan_chunks_leaves_staging_and_scratch_that_the_rerun_removes(ingest_root):
    assert _ingest_step("read_fasta", ingest_root).returncode == 0
    res = _ingest_step("plan_chunks", ingest_root, kill_at="plan_chunk_queued")
    assert res.returncode == -9, res.stderr[-2000:]
    left = _leftovers(ingest_root)
    assert any(p.startswith(".chunks.tmp-") for p in left), left  # the staging folder of the chunks
    assert any(p.startswith("scratch/plan_chunks/ingest.duckdb") for p in left), left  # DuckDB's database
    # what a kill in the middle of the swap would leave, and a killed records writer
    (ingest_root / ".chunks.old-4242").mkdir()
    (ingest_root / "ingest/.records.parquet.tmp-4242").write_bytes(b"PAR1 half")
    res = _ingest_step("plan_chunks", ingest_root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _leftovers(ingest_root) == []
    assert not (ingest_root / "scratch/plan_chunks").exists()
    assert pq.ParquetFile(ingest_root / "ingest/records.parquet").metadata.num_rows == 3000
    assert len(list((ingest_root / "chunks").glob("chunk_*.parquet"))) > 2


def test_stale_sibling_removal_touches_only_the_same_final_name(tmp_path):
    from foldatlas.atomic import atomic_path, remove_stale

    keep = [".a.parquet2.tmp-1", "a.parquet.tmp-1", ".b.parquet.tmp-1", ".a.parquet.tmpx"]
    for name in [*keep, ".a.parquet.tmp-99999", ".a.parquet.old-1"]:
        (tmp_path / name).write_text("x")
    (tmp_path / ".a.parquet.tmp-7").mkdir()
    with atomic_path(tmp_path / "a.parquet") as tmp:
        assert not (tmp_path / ".a.parquet.tmp-99999").exists()
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "a.parquet"])
    assert remove_stale(tmp_path / "missing-folder" / "x") == []


def test_sigkill_of_plan_chunks_in_a_workflow_then_rerun_leaves_nothing(tmp_path):
    wd = prepare(tmp_path, {"chunks": {"gpu_seconds": 1.0}})
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"kill_at": "plan_chunk_queued", "kill_after": 2}))
    res = workflow(wd, "--until", "plan_chunks", env=env, timeout=300)
    assert res.returncode != 0 and "Error in rule plan_chunks" in res.stdout + res.stderr
    assert _leftovers(wd / "results"), "the kill should leave temporary files"
    res = workflow(wd, "--until", "plan_chunks", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _leftovers(wd / "results") == []
    files = json.loads((wd / "results/ingest/inputs.json").read_text())["files"]
    assert sum(f["records"] for f in files) == pq.ParquetFile(wd / "results/ingest/records.parquet").metadata.num_rows
