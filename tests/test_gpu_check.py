"""The GPU check (bench/gpu_check.sh) cannot run here, but its pure-Python parts can:
argument parsing, the memory plan, and the script's dry run, so that it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO
from foldatlas.batching import ESMFOLD_V1_MEMORY


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments(gpu_check):
    args = gpu_check.parse_args([])
    assert args.skip == [] and args.seconds < 480 and 0 < args.fraction <= 1  # inside the shell's 8-minute limit
    args = gpu_check.parse_args(["--skip", "benchmark", "memory", "--out", "x.json"])
    assert args.skip == ["benchmark", "memory"] and str(args.out) == "x.json"
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--skip", "nonsense"])


@pytest.mark.parametrize("free_gib", [70, 130])  # free after loading on an H100 / H200
def test_memory_plan_brackets_the_unchunked_limit(gpu_check, free_gib):
    free = free_gib * 2**30
    plan = gpu_check.memory_plan(free, 0.85)
    budget = free * 0.85
    unchunked = [p for p in plan if p["chunk"] is None]
    assert [p["batch"] for p in unchunked] == [1, 1, 1, 2]
    assert all(p["estimate_bytes"] == ESMFOLD_V1_MEMORY.estimate(p["batch"], p["length"], p["chunk"]) for p in plan)
    assert all(p["estimate_bytes"] <= budget for p in unchunked)
    longest = max(p["length"] for p in unchunked)
    assert longest == min(ESMFOLD_V1_MEMORY.longest_unchunked(budget), gpu_check.MAX_LENGTH)
    assert all(p["length"] <= gpu_check.MAX_LENGTH for p in plan)
    chunked = [p for p in plan if p["chunk"] is not None]
    if longest < gpu_check.MAX_LENGTH:  # room for one sequence beyond the unchunked limit
        assert len(chunked) == 1 and chunked[0]["length"] > longest and chunked[0]["estimate_bytes"] <= budget


def test_dry_run_of_the_shell_script():
    out = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh"), "--dry-run", "--assume-free-gib", "30"],
                         capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})  # fmt: skip
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["dry_run"] and plan["steps"] == ["env", "consistency", "oom_release", "memory", "benchmark"]
    assert plan["memory_plan"] and plan["assume_free_gib"] == 30


def test_benchmark_scripts_load_beside_it(gpu_check):
    fold_memory = gpu_check.bench_module("fold_memory")
    assert fold_memory.parse_chunk("none") is None and fold_memory.parse_chunk("128") == 128
    fold_vs_plain = gpu_check.bench_module("fold_vs_plain")
    seqs = fold_vs_plain.sample(200, 30, 1024)
    batches = fold_vs_plain.plain_batches(seqs)  # esm-fold's: sorted, at most 1024 residues summed
    assert sorted(s for b in batches for s in b) == sorted(seqs)
    assert all(sum(map(len, b)) <= 1024 or len(b) == 1 for b in batches)
    lengths = sorted(map(len, seqs))
    assert 150 < lengths[100] < 350  # MGnify-like: log-normal around 250
