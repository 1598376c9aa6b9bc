"""Fold memory against the memory model: the peak memory of one forward pass for a sweep
of lengths, batch sizes and trunk chunk sizes, next to ``MemoryModel.estimate``.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what
was allocated before the pass (the weights), in one process.
CPU: the peak RSS of a fresh process per point (``ru_maxrss``) minus its RSS just before
the pass, with glibc's mmap threshold fixed so that freed blocks leave the RSS at once.

Models: ``probe`` (ESMFold's real trunk and structure module, one block, after a toy
language model: the trunk's memory per pair entry at real dimensions, on any machine),
``tiny``, ``full_random`` (the whole real architecture, random weights: GPUs).
Every point runs one trunk pass (``num_recycles`` 0): recycling does not raise the peak.

Usage:
  python bench/fold_memory.py --model probe --lengths 128 256 384 --batches 1 --chunks none 128
  python bench/fold_memory.py --model full_random --device cuda --lengths 256 512 768 1024 --batches 1 2 --chunks none 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

AA = "ACDEFGHIKLMNPQRSTVWY"


def parse_chunk(text: str) -> int | None:
    return None if text.lower() in ("none", "0") else int(text)


def build_engine(model: str, device: str, precision: str = "auto"):  # type: ignore[no-untyped-def]
    """A FoldEngine for ``model`` on ``device``, one trunk pass per forward."""
    import torch

    from foldatlas.engine import EngineSettings, FoldEngine
    from foldatlas.model import LoadedModel, cast_for_inference, load_folding_model, probe_esmfold_config, resolve_device, resolve_lm_dtype
    from foldatlas.settings import EmbeddingSettings, FoldSettings

    settings = EngineSettings.resolve(FoldSettings.from_config({"num_recycles": 0}), EmbeddingSettings.from_config({}), free_memory=None)
    if model != "probe":
        return FoldEngine(load_folding_model(model, device=device, precision=precision), settings)
    from transformers import EsmForProteinFolding

    dev = resolve_device(device)
    dtype = resolve_lm_dtype(precision, dev)
    torch.manual_seed(0)
    m = EsmForProteinFolding(probe_esmfold_config()).eval().requires_grad_(False)
    cast_for_inference(m, dtype)
    return FoldEngine(LoadedModel(m.to(dev), "probe", "random", dev, dtype), settings)


def batch_items(batch: int, length: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    from foldatlas.prediction import SeqItem

    rng = np.random.default_rng(seed)
    return [SeqItem(f"{length}-{i}", "".join(rng.choice(list(AA), length))) for i in range(batch)]


def measure_cuda(engine, batch: int, length: int, chunk: int | None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Peak bytes allocated by one forward pass beyond what was allocated before it."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    engine.forward_batch(batch_items(batch, length), chunk)
    torch.cuda.synchronize()
    return {"measured_bytes": torch.cuda.max_memory_allocated() - base, "seconds": time.perf_counter() - started}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_cpu_here(engine, batch: int, length: int, chunk: int | None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """In a fresh process: peak RSS of one forward pass above the RSS before it."""
    engine.forward_batch(batch_items(1, 16), chunk)  # warm-up: lazy allocations, thread pools
    before, peak_before = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    engine.forward_batch(batch_items(batch, length), chunk)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"measured_bytes": peak - before, "seconds": time.perf_counter() - started, "valid": peak > peak_before}


def measure_cpu(model: str, batch: int, length: int, chunk: int | None, threads: int) -> dict:  # type: ignore[type-arg]
    """One point in a child process (peak RSS cannot be reset within a process)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    args = [sys.executable, __file__, "--model", model, "--point", str(batch), str(length), str(chunk), "--threads", str(threads)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(engine, batch: int, length: int, chunk: int | None, measured: dict) -> dict:  # type: ignore[no-untyped-def,type-arg]
    est = engine.memory.estimate(batch, length, chunk)
    entries = batch * length * length
    return {
        "batch": batch, "length": length, "chunk": chunk, **measured, "estimate_bytes": est,
        "measured_over_estimate": round(measured["measured_bytes"] / est, 3),
        "measured_bytes_per_pair_entry": round(measured["measured_bytes"] / entries, 1),
        "model_bytes_per_pair_entry": round(engine.memory.pair_entry_bytes(length, chunk), 1),
    }  # fmt: skip


def sweep(engine, model: str, args: argparse.Namespace) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    rows = []
    for length in args.lengths:
        for batch in args.batches:
            for chunk in args.chunks:
                if engine.device.type == "cuda":
                    measured = measure_cuda(engine, batch, length, chunk)
                else:
                    measured = measure_cpu(model, batch, length, chunk, args.threads)
                rows.append(row(engine, batch, length, chunk, measured))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="probe", choices=["probe", "tiny", "full_random"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 384])
    ap.add_argument("--batches", type=int, nargs="+", default=[1])
    ap.add_argument("--chunks", type=parse_chunk, nargs="+", default=[None, 128])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    ap.add_argument("--point", nargs=3, default=None, help=argparse.SUPPRESS)  # child process: batch length chunk
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    engine = build_engine(args.model, args.device, args.precision)
    if args.point:
        batch, length, chunk = int(args.point[0]), int(args.point[1]), parse_chunk(args.point[2])
        print(json.dumps(measure_cpu_here(engine, batch, length, chunk)))
        return
    rows = sweep(engine, args.model, args)
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "device": str(engine.device), "torch": torch.__version__, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
