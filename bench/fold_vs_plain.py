"""Fold benchmark: foldatlas's engine against a plain esm-fold-style loop, same run.

The plain loop is what a user would write: transformers ``EsmForProteinFolding``,
sequences sorted by length, greedy batches of at most 1024 residues (esm-fold's
default), ``infer``, PDBs written after each batch, and ESM-2 embeddings from a second,
separate ESM-2 pass. foldatlas = ``fold_chunk`` (token budgets, bf16 language model
where supported, embeddings from the same forward pass, writer thread, resumable
segments, Parquet + archive outputs).

Modes:
  --model full_random   the real ESMFold architecture (ESM-2 3B + 48-block trunk) with
                        random weights: the real model's cost (CPU: a few sequences)
  --model tiny          the tiny model: host overhead (share of wall time outside the
                        forward pass) and the harness's ceiling (model time removed)
  --device cuda         the same on a GPU (MGnify-like length sample)

Usage: python bench/fold_vs_plain.py --model full_random --n 6 --min-len 50 --max-len 200
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from foldatlas.engine import EngineSettings, FoldEngine
from foldatlas.fasta import sequence_checksum
from foldatlas.fold import fold_chunk
from foldatlas.layout import Layout
from foldatlas.model import load_folding_model, resolve_lm_dtype
from foldatlas.settings import EmbeddingSettings, FoldSettings
from foldatlas.tables import CHUNK_SCHEMA

REPO = Path(__file__).resolve().parents[1]

AA = "ACDEFGHIKLMNPQRSTVWY"


def sample(n: int, lo: int, hi: int, seed: int = 0, mgnify: bool = False) -> list[str]:
    rng = np.random.default_rng(seed)
    if mgnify:  # MGnify-like: log-normal around 250, capped at 1280 (ESM Atlas)
        lengths = np.clip(rng.lognormal(np.log(250), 0.55, n).astype(int), lo, hi)
    else:
        lengths = rng.integers(lo, hi + 1, n)
    return ["".join(rng.choice(list(AA), L)) for L in lengths]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_tf32(device: torch.device, on: bool) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def workflow_settings(device: torch.device, *, num_recycles: int, max_tokens: int) -> EngineSettings:
    """The settings a ``fold_chunk`` job would use with ``config/config.yaml`` on ``device``
    (token and pair budgets sized to the GPU's memory), with the benchmark's overrides."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    fold = FoldSettings.from_config({**config["fold"], "num_recycles": num_recycles, "max_tokens_per_batch": max_tokens})
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    return EngineSettings.resolve(fold, EmbeddingSettings.from_config(config["embeddings"]), device_memory=memory)


def plain_loop(model, seqs: list[str], out: Path, num_recycles: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    """esm-fold-style: sort, batch by <= 1024 residues, infer, write PDBs, second ESM-2 pass."""
    out.mkdir(parents=True, exist_ok=True)
    model.trunk.config.max_recycles = num_recycles + 1  # infer() has no num_recycles argument
    order = sorted(seqs, key=len)
    batches, cur, tokens = [], [], 0
    for s in order:
        if cur and tokens + len(s) > 1024:
            batches.append(cur)
            cur, tokens = [], 0
        cur.append(s)
        tokens += len(s)
    if cur:
        batches.append(cur)
    vocab = model.config.vocab_list
    sync(device)
    t = time.perf_counter()
    for batch in batches:
        with torch.no_grad():
            output = model.infer(batch)
        for s, pdb in zip(batch, model.output_to_pdb(output)):
            (out / f"{sequence_checksum(s.encode())}.pdb").write_text(pdb)
        # embeddings: a second, separate ESM-2 pass
        for s in batch:
            toks = torch.tensor([[vocab.index("<cls>")] + [vocab.index(c) for c in s] + [vocab.index("<eos>")]], device=device)
            with torch.no_grad():
                h = model.esm(toks, attention_mask=torch.ones_like(toks)).last_hidden_state
            np.save(out / f"{sequence_checksum(s.encode())}.npy", h[0, 1:-1].float().mean(0).cpu().numpy())
    sync(device)
    return time.perf_counter() - t


def foldatlas_run(loaded, seqs: list[str], tmp: Path, settings: EngineSettings) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """fold_chunk over the sample; returns (wall seconds, seconds inside model forward)."""
    chunk = tmp / "chunk_000000.parquet"
    seqs = sorted(seqs, key=len)
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs,
                             "length": [len(s) for s in seqs], "est_seconds": [1.0] * len(seqs)}, schema=CHUNK_SCHEMA), chunk)  # fmt: skip
    engine = FoldEngine(loaded, settings)
    forward = [0.0]
    inner = engine.model.forward

    def timed_forward(*a, **k):  # type: ignore[no-untyped-def]
        sync(loaded.device)
        t0 = time.perf_counter()
        r = inner(*a, **k)
        sync(loaded.device)
        forward[0] += time.perf_counter() - t0
        return r

    engine.model.forward = timed_forward
    out = tmp / "fa"
    sync(loaded.device)
    t = time.perf_counter()
    fold_chunk(chunk, Layout(out).chunk_outputs("000000"), tmp / "partial", engine, commit_seconds=60, progress_seconds=3600)
    wall = time.perf_counter() - t
    engine.model.forward = inner
    engine.close()
    return wall, forward[0]


def ceiling(loaded, seqs: list[str], tmp: Path, settings: EngineSettings) -> float:  # type: ignore[no-untyped-def]
    """Sequences per second of the harness alone: every forward returns a cached output."""
    engine = FoldEngine(loaded, settings)
    cache: dict = {}
    inner = engine.model.forward

    def cached(aatype, *a, **k):  # type: ignore[no-untyped-def]
        key = tuple(aatype.shape)
        if key not in cache:
            cache[key] = (inner(aatype, *a, **k), engine._captured)
        out, hidden = cache[key]
        engine._captured = hidden
        return out

    engine.model.forward = cached
    engine._capture = lambda *a: None  # type: ignore[method-assign]
    chunk = tmp / "chunk_000001.parquet"
    seqs = sorted(seqs, key=len)
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs,
                             "length": [len(s) for s in seqs], "est_seconds": [1.0] * len(seqs)}, schema=CHUNK_SCHEMA), chunk)  # fmt: skip
    # warm-up run: fills the cache with one output per batch shape (the timed run below
    # must not clear it, or it folds for real again)
    fold_chunk(chunk, Layout(tmp / "w").chunk_outputs("000001"), tmp / "wp", engine, commit_seconds=60, progress_seconds=3600)
    misses = len(cache)
    out = tmp / "c"
    t = time.perf_counter()
    fold_chunk(chunk, Layout(out).chunk_outputs("000001"), tmp / "cp", engine, commit_seconds=60, progress_seconds=3600)
    wall = time.perf_counter() - t
    if len(cache) != misses:
        raise RuntimeError("the timed ceiling run called the model (the cache was not used)")
    engine.model.forward = inner
    return len(seqs) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="full_random", choices=["full_random", "tiny"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--min-len", type=int, default=50)
    ap.add_argument("--max-len", type=int, default=200)
    ap.add_argument("--mgnify", action="store_true", help="MGnify-like log-normal lengths (GPU runs)")
    ap.add_argument("--num-recycles", type=int, default=4)
    ap.add_argument("--precision", default="auto", help="foldatlas language-model precision (auto: bf16 on GPUs; the CPU default here is bf16 when it has avx512_bf16/AMX)")
    ap.add_argument("--max-tokens", type=int, default=0, help="foldatlas token budget; 0 = its default for the device")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    seqs = sample(args.n, args.min_len, args.max_len, mgnify=args.mgnify)
    precision = args.precision
    if precision == "auto" and device.type == "cpu":
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        precision = "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"
    elif precision == "auto":  # the workflow's GPU default: bf16 where supported, else fp16
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}[resolve_lm_dtype("auto", device)]
    result = {"model": args.model, "device": str(device), "n": len(seqs), "lengths": sorted(map(len, seqs)),
              "num_recycles": args.num_recycles, "foldatlas_precision": precision, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}  # fmt: skip
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fold-"))
    try:
        t = time.perf_counter()
        loaded = load_folding_model(args.model, device=str(device), precision="fp32")
        result["load_seconds"] = time.perf_counter() - t
        # the plain loop runs as a user's script would: fp32 throughout, no TF32
        # (load_folding_model switched TF32 on for foldatlas; off until its phase)
        set_tf32(device, False)
        # warm-up (kernels, allocator) on a short sequence, outside the timings
        with torch.no_grad():
            loaded.model.infer([seqs[0][:30]])
        plain = plain_loop(loaded.model, seqs, tmp / "plain", args.num_recycles, device)
        result["plain_seconds"] = plain
        if precision != "fp32":
            loaded.model.esm.to({"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
        set_tf32(device, True)
        settings = workflow_settings(device, num_recycles=args.num_recycles, max_tokens=args.max_tokens)
        result["foldatlas_max_tokens"] = settings.max_tokens
        result["foldatlas_max_pair_tokens"] = settings.max_pair_tokens
        result["foldatlas_tf32"] = device.type == "cuda"
        wall, fwd = foldatlas_run(loaded, seqs, tmp, settings)
        result["foldatlas_seconds"] = wall
        result["foldatlas_forward_seconds"] = fwd
        result["host_overhead_share"] = 1 - fwd / wall
        result["plain_seq_per_hour"] = len(seqs) / plain * 3600
        result["foldatlas_seq_per_hour"] = len(seqs) / wall * 3600
        result["speedup"] = plain / wall
        if args.model == "tiny":
            result["harness_ceiling_seq_per_s"] = ceiling(loaded, seqs, tmp, settings)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if device.type == "cuda":
            result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
