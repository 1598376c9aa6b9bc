"""The workflow through `snakemake --profile cluster` on a real single-node Slurm.

Skipped, with the reason, where Slurm cannot be started (not root, packages absent);
.ci/run installs the packages. Polling values are CI-sized on the command line; the
profile keeps production values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import slurm_cluster
from conftest import REPO
from test_workflow import prepare

pytestmark = pytest.mark.slurm
FAST_POLL = ["--slurm-status-command", "squeue", "--seconds-between-status-checks", "2",
             "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--jobs", "4"]  # fmt: skip
# asks Slurm for one GPU per fold job (runs on the CPU here, see slurm_cluster); short chains fold fast
EXTRA = {"fold": {"device": "auto"}, "ingest": {"max_length": 120}}


@pytest.fixture(scope="module")
def slurm():
    why = slurm_cluster.unavailable()
    if why:
        pytest.skip(why)
    slurm_cluster.start()
    yield
    slurm_cluster.stop()


def cluster_run(wd: Path, *extra: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile", str(REPO / "cluster"),
           "--configfile", "run.yaml", *FAST_POLL, *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def jobs_of(wd: Path) -> list[dict[str, str]]:
    return [j for j in slurm_cluster.jobs() if j.get("WorkDir") == str(wd)]


@pytest.fixture(scope="module")
def cluster_demo(slurm, tmp_path_factory):
    wd = prepare(tmp_path_factory.mktemp("slurm"), EXTRA)
    rc, out = cluster_run(wd)
    assert rc == 0, out[-5000:]
    return wd


def test_jobs_really_went_through_slurm(cluster_demo):
    wd = cluster_demo
    jobs = jobs_of(wd)
    comments = [j.get("Comment", "") for j in jobs]
    n_chunks = len(list((wd / "results/chunks").glob("chunk_*.parquet")))
    assert sum(c.startswith("rule_fold_chunk") for c in comments) == n_chunks
    for rule in ("read_fasta", "plan_chunks", "publish_release", "assemble_atlas", "check_accounting"):
        assert any(c.startswith(f"rule_{rule}") for c in comments), rule
    assert not any(c.startswith(("rule_all", "rule_atlas_report")) for c in comments)  # local rules
    assert all(j["JobState"] == "COMPLETED" for j in jobs)
    fold = [j for j in jobs if j.get("Comment", "").startswith("rule_fold_chunk")]
    assert all("gpu" in (j.get("TresPerJob", "") + j.get("TresPerNode", "")) for j in fold), fold[0]
    logs = list((wd / ".snakemake/slurm_logs/rule_fold_chunk").rglob("*.log"))
    assert len(logs) >= n_chunks
    assert json.loads((wd / "results/atlas/accounting.json").read_text())["ok"] is True


def test_cancelled_fold_job_fails_the_run_and_a_rerun_completes(cluster_demo, slurm, tmp_path):
    wd = prepare(tmp_path, EXTRA)
    env = dict(os.environ, FOLDATLAS_INJECT_FAULTS=json.dumps({"sleep_seconds": 2.0}))
    proc = cluster_run(wd, "--retries", "0", env=env, wait=False)  # the profile would retry it
    cancelled = None
    deadline = time.monotonic() + 300
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        for j in jobs_of(wd):
            if j.get("Comment", "").startswith("rule_fold_chunk") and j["JobState"] == "RUNNING":
                subprocess.run(["scancel", j["JobId"]], check=True)
                cancelled = j["JobId"]
                break
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=600)
    assert cancelled is not None, "no fold job was seen running"
    assert proc.returncode != 0
    assert "CANCELLED" in out or "Error in rule fold_chunk" in out, out[-3000:]
    assert not (wd / "results/atlas/accounting.json").exists()
    rc, out = cluster_run(wd)
    assert rc == 0, out[-5000:]
    a = pq.read_table(wd / "results/atlas/metadata.parquet").to_pylist()
    b = pq.read_table(cluster_demo / "results/atlas/metadata.parquet").to_pylist()
    assert [(r["id"], r["status"], r["checksum"]) for r in a] == [(r["id"], r["status"], r["checksum"]) for r in b]
    np.testing.assert_allclose([r["plddt"] or 0 for r in a], [r["plddt"] or 0 for r in b], atol=1e-3)
    ia = sorted(r["member"] for r in pq.read_table(wd / "results/atlas/structures/index.parquet").to_pylist())
    ib = sorted(r["member"] for r in pq.read_table(cluster_demo / "results/atlas/structures/index.parquet").to_pylist())
    assert ia == ib
