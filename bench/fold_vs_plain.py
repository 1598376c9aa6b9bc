"""Fold benchmark: a foldatlas fold job against the fair plain loop, same model, same sample.

The plain loop is what esm-fold and the transformers ESMFold notebook do:
- the language model in fp16 on GPUs (``model.esm.half()``, which also rounds the rotary
  frequencies to fp16, as fair-esm's ``esm.half()`` does), fp32 on the CPU;
- sequences sorted by length, greedy batches of at most 1024 residues (esm-fold's
  ``--max-tokens-per-batch``);
- ``model.infer(batch)`` with the model's own recycles (4 trunk passes for ESMFold v1),
  PDBs written after each batch;
- its TF32 setting both ways: off (esm-fold's script) and on (the notebook);
- "fold + embeddings" adds a batched ESM-2 pass in the same precision over the same
  batches (mean of the last layer, as esm-extract), timed apart from the fold, so the same
  run gives "fold only" and "fold + embeddings".

foldatlas: ``fold_chunk`` with the settings a job takes from ``config/config.yaml`` on this
device (fp16 language model with fp32 rotary frequencies, TF32 trunk, batches sized by the
memory model, embeddings from the same forward pass, writer thread, resumable segments,
Parquet + archive). It always makes embeddings, so its one time is set against both
baselines.

The model is loaded once; the three phases (plain TF32 off, plain TF32 on, foldatlas) run
in alternating order over ``--rounds`` rounds (ABC, CBA, ...), each phase's best time
counts, and the peak GPU memory is reset before each phase. Outputs are compared per
sequence (C-alpha coordinates and pLDDT from the PDB files of both).

Usage:
  python bench/fold_vs_plain.py --model tiny --n 200 --max-len 400                 (CPU)
  python bench/fold_vs_plain.py --model full_random --device cuda --n 400 --rounds 2
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

from foldatlas.archive import read_structure_archive
from foldatlas.engine import EngineSettings, FoldEngine
from foldatlas.fasta import sequence_checksum
from foldatlas.fold import fold_chunk
from foldatlas.layout import Layout
from foldatlas.model import cast_for_inference, load_folding_model
from foldatlas.settings import EmbeddingSettings, FoldSettings
from foldatlas.tables import CHUNK_SCHEMA

REPO = Path(__file__).resolve().parents[1]
AA = "ACDEFGHIKLMNPQRSTVWY"
#: esm-fold's --max-tokens-per-batch default: the sum of lengths in one batch.
PLAIN_MAX_TOKENS = 1024


def sample(n: int, lo: int, hi: int, *, median: float = 250, sigma: float = 0.55, seed: int = 0) -> list[str]:
    """``n`` random sequences with MGnify-like lengths: log-normal around ``median``,
    clipped to ``[lo, hi]`` (the ESM Atlas folded up to 1280)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(median), sigma, n).astype(int), lo, hi)
    return ["".join(rng.choice(list(AA), L)) for L in lengths]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_tf32(device: torch.device, on: bool) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def plain_batches(seqs: list[str]) -> list[list[str]]:
    """esm-fold's batching: sorted by length, greedy, at most 1024 residues summed."""
    batches, cur, tokens = [], [], 0
    for s in sorted(seqs, key=len):
        if cur and tokens + len(s) > PLAIN_MAX_TOKENS:
            batches.append(cur)
            cur, tokens = [], 0
        cur.append(s)
        tokens += len(s)
    return batches + ([cur] if cur else [])


def _embed_batch(model, batch: list[str], device: torch.device) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Batched ESM-2 pass (padded), mean of the last layer per sequence."""
    vocab = model.config.vocab_list
    cls_, eos, pad = vocab.index("<cls>"), vocab.index("<eos>"), vocab.index("<pad>")
    L = max(map(len, batch)) + 2
    toks = torch.full((len(batch), L), pad, dtype=torch.long)
    for i, s in enumerate(batch):
        toks[i, : len(s) + 2] = torch.tensor([cls_] + [vocab.index(c) for c in s] + [eos])
    toks = toks.to(device)
    with torch.no_grad():
        h = model.esm(toks, attention_mask=(toks != pad).long()).last_hidden_state
    return np.stack([h[i, 1 : len(s) + 1].float().mean(0).cpu().numpy() for i, s in enumerate(batch)])


def plain_loop(model, seqs: list[str], out: Path, device: torch.device, *, tf32: bool) -> dict:  # type: ignore[no-untyped-def]
    """The fair plain loop; returns fold and embedding seconds (each synchronised)."""
    out.mkdir(parents=True, exist_ok=True)
    model.trunk.set_chunk_size(None)  # esm-fold's default: unchunked
    if device.type == "cuda":
        model.esm.half()  # as esm-fold / fair-esm: rotary frequencies rounded to fp16 too
    set_tf32(device, tf32)
    fold_s = embed_s = 0.0
    for batch in plain_batches(seqs):
        sync(device)
        t = time.perf_counter()
        with torch.no_grad():
            output = model.infer(batch)
        for s, pdb in zip(batch, model.output_to_pdb(output)):
            (out / f"{sequence_checksum(s.encode())}.pdb").write_text(pdb)
        del output
        sync(device)
        t2 = time.perf_counter()
        emb = _embed_batch(model, batch, device)
        for s, v in zip(batch, emb):
            np.save(out / f"{sequence_checksum(s.encode())}.npy", v)
        sync(device)
        fold_s, embed_s = fold_s + t2 - t, embed_s + time.perf_counter() - t2
    return {"fold_seconds": fold_s, "embed_seconds": embed_s, "seconds": fold_s + embed_s}


def workflow_settings(device: torch.device, *, num_recycles: int | None) -> EngineSettings:
    """The settings a ``fold_chunk`` job takes from ``config/config.yaml`` on ``device``."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    fold_cfg = dict(config["fold"], **({"num_recycles": num_recycles} if num_recycles is not None else {}))
    free = None
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return EngineSettings.resolve(FoldSettings.from_config(fold_cfg), EmbeddingSettings.from_config(config["embeddings"]), free_memory=free)


def write_chunk(path: Path, seqs: list[str]) -> None:
    seqs = sorted(seqs, key=len)
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs,
                             "length": [len(s) for s in seqs], "est_seconds": [1.0] * len(seqs)}, schema=CHUNK_SCHEMA), path)  # fmt: skip


def foldatlas_run(loaded, seqs: list[str], tmp: Path, settings: EngineSettings) -> dict:  # type: ignore[no-untyped-def]
    """``fold_chunk`` over the sample; wall seconds and seconds inside the model's forward."""
    cast_for_inference(loaded.model, loaded.lm_dtype)  # undo the plain loop's half(): fp32 rotary
    set_tf32(loaded.device, loaded.tf32)
    chunk = tmp / "chunk_000000.parquet"
    write_chunk(chunk, seqs)
    engine = FoldEngine(loaded, settings)
    forward, inner = [0.0], engine.model.forward

    def timed_forward(*a, **k):  # type: ignore[no-untyped-def]
        sync(loaded.device)
        t0 = time.perf_counter()
        r = inner(*a, **k)
        sync(loaded.device)
        forward[0] += time.perf_counter() - t0
        return r

    engine.model.forward = timed_forward
    shutil.rmtree(tmp / "fa", ignore_errors=True)
    sync(loaded.device)
    t = time.perf_counter()
    try:
        fold_chunk(chunk, Layout(tmp / "fa").store("bench").chunk_outputs("000000"), tmp / "partial", engine, commit_seconds=60, progress_seconds=3600)
    finally:
        del engine.model.forward
        engine.close()
    wall = time.perf_counter() - t
    return {"seconds": wall, "forward_seconds": forward[0], "host_overhead_share": 1 - forward[0] / wall}


def _pdb_ca(text: str) -> tuple[np.ndarray, np.ndarray]:
    """C-alpha coordinates and B-factors of a PDB text (B-factors scaled to 0-1)."""
    rows = [ln for ln in text.splitlines() if ln.startswith("ATOM") and ln[12:16].strip() == "CA"]
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in rows])
    b = np.array([float(ln[60:66]) for ln in rows])
    return xyz, b / 100 if b.max(initial=0) > 1.5 else b


def agreement(plain_dir: Path, archive: Path) -> dict:
    """Largest and mean differences between the plain loop's and foldatlas's structures."""
    ours = read_structure_archive(archive)
    ca_dev, plddt_dev = [], []
    for name, text in ours.items():
        xyz_a, b_a = _pdb_ca(text)
        xyz_b, b_b = _pdb_ca((plain_dir / name).read_text())
        ca_dev.append(np.linalg.norm(xyz_a - xyz_b, axis=1))
        plddt_dev.append(np.abs(b_a - b_b))
    ca, pl = np.concatenate(ca_dev), np.concatenate(plddt_dev)
    return {"structures": len(ours), "max_ca_deviation_A": float(ca.max()), "mean_ca_deviation_A": float(ca.mean()),
            "max_plddt_diff": float(pl.max()), "mean_plddt_diff": float(pl.mean())}  # fmt: skip


def run_phase(name: str, loaded, seqs: list[str], tmp: Path, settings: EngineSettings) -> dict:  # type: ignore[no-untyped-def]
    dev = loaded.device
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    if name == "foldatlas":
        result = foldatlas_run(loaded, seqs, tmp, settings)
    else:
        shutil.rmtree(tmp / name, ignore_errors=True)
        result = plain_loop(loaded.model, seqs, tmp / name, dev, tf32=name.endswith("on"))
    if dev.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return result


def benchmark(loaded, seqs: list[str], *, rounds: int = 2, num_recycles: int | None = None) -> dict:  # type: ignore[no-untyped-def]
    """The three phases over ``rounds`` alternating rounds; best time per phase, ratios,
    agreement of the outputs."""
    dev = loaded.device
    phases = ["plain_tf32_off", "plain_tf32_on", "foldatlas"] if dev.type == "cuda" else ["plain_tf32_off", "foldatlas"]
    if num_recycles is not None:
        loaded.model.trunk.config.max_recycles = num_recycles + 1  # infer() takes the model's own
    settings = workflow_settings(dev, num_recycles=num_recycles)
    runs: dict[str, list[dict]] = {p: [] for p in phases}
    tmp = Path(tempfile.mkdtemp(prefix="bench-fold-"))
    try:
        with torch.no_grad():
            loaded.model.infer([seqs[0][:30]])  # warm-up: kernels, allocator
        for r in range(rounds):
            for name in phases if r % 2 == 0 else phases[::-1]:
                runs[name].append(run_phase(name, loaded, seqs, tmp, settings))
        agree = agreement(tmp / phases[0], Layout(tmp / "fa").store("bench").chunk_outputs("000000").structures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = {p: min(rs, key=lambda r: r["seconds"]) for p, rs in runs.items()}
    fa = best["foldatlas"]["seconds"]
    ratios = {}
    for p in phases[:-1]:
        ratios[f"fold_only_vs_{p}"] = best[p]["fold_seconds"] / fa
        ratios[f"fold_embeddings_vs_{p}"] = best[p]["seconds"] / fa
    return {"phases": best, "all_seconds": {p: [r["seconds"] for r in rs] for p, rs in runs.items()}, "speedup": ratios,
            "agreement": agree, "foldatlas_max_tokens": settings.max_tokens, "foldatlas_memory_budget": settings.memory_budget,
            "sequences_per_hour": {p: len(seqs) / b["seconds"] * 3600 for p, b in best.items()}}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", choices=["full_random", "tiny"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=400, help="sequences (several hundred: batches fill)")
    ap.add_argument("--min-len", type=int, default=30)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--median-len", type=float, default=250)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (ABC, CBA, ...)")
    ap.add_argument("--num-recycles", type=int, default=None, help="default: the model's own (4 trunk passes)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seqs = sample(args.n, args.min_len, args.max_len, median=args.median_len)
    t = time.perf_counter()
    loaded = load_folding_model(args.model, device=args.device)
    lengths = sorted(map(len, seqs))
    result = {"model": args.model, "device": str(loaded.device), "n": len(seqs), "load_seconds": time.perf_counter() - t,
              "lengths": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1], "residues": sum(lengths)},
              "lm_precision": loaded.lm_precision, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "rounds": args.rounds}  # fmt: skip
    if loaded.device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(loaded.device)
    result.update(benchmark(loaded, seqs, rounds=args.rounds, num_recycles=args.num_recycles))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
