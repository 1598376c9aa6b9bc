"""GPU check of the fold engine: what the CPU cannot prove, in one run of at most 8 minutes
on one H100/H200, offline (random weights only). Run it through ``bench/gpu_check.sh``.

Steps (each one's result goes into one summary JSON, rewritten after every step, so a
run cut short keeps what finished):

1. ``env``: torch, CUDA, the GPU, its compute capability, the allocator settings.
2. ``consistency``: the tiny model (weights at trained scale) batched against one
   sequence at a time, language model in fp16, bf16 and fp32 (trunk fp32 with TF32, and
   fp32 also without), with the CPU tests' tolerances.
3. ``oom_release``: an out-of-memory error raised inside the trunk after a 2 GiB
   allocation; ``torch.cuda.memory_allocated()`` must be back at its baseline before the
   retry's forward pass starts.
4. ``memory``: ``full_random`` (the real architecture) at lengths near the longest one
   the memory model lets run unchunked on this GPU, one chunked: ``max_memory_allocated``
   against the estimate (an OOM is recorded, not fatal).
5. ``benchmark``: the fair benchmark (``bench/fold_vs_plain.py``) at reduced size.

``--dry-run`` prints the plan (the memory model's lengths for ``--assume-free-gib``)
without a GPU; CI runs it, and tests import the pure-Python parts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from foldatlas.batching import ESMFOLD_V1_MEMORY, MemoryModel  # pure Python

HERE = Path(__file__).resolve().parent

STEPS = ("env", "consistency", "oom_release", "memory", "benchmark")
#: The CPU tests' tolerances (tests/test_engine.py, float32 at trained-scale weights).
TOLERANCES = {"positions": 1e-3, "atom_plddt": 1e-4, "pae": 0.032, "ptm": 1e-4, "plddt": 1e-4, "embeddings": 1e-4}
#: Bytes the retry's own inputs may add to the baseline (aatype, mask, positions: a few KB).
OOM_SLACK_BYTES = 4 << 20
#: Longest length the memory step folds (the ESM Atlas's limit).
MAX_LENGTH = 1280


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="summary JSON (rewritten after each step)")
    ap.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    ap.add_argument("--seconds", type=float, default=450, help="time budget; steps that would start later are skipped")
    ap.add_argument("--fraction", type=float, default=0.85, help="fold.gpu_memory_fraction for the memory plan")
    ap.add_argument("--bench-n", type=int, default=24, help="sequences of the reduced fair benchmark")
    ap.add_argument("--bench-max-len", type=int, default=600)
    ap.add_argument("--dry-run", action="store_true", help="print the plan, touch no GPU")
    ap.add_argument("--assume-free-gib", type=float, default=72.0, help="free GPU memory assumed by --dry-run")
    return ap.parse_args(argv)


def memory_plan(free_bytes: float, fraction: float, model: MemoryModel = ESMFOLD_V1_MEMORY, max_length: int = MAX_LENGTH) -> list[dict]:
    """``(batch, length, chunk)`` points near the longest unchunked length for this budget,
    with their estimates: 60%, 85% and 100% of it alone, the longest pair, and one
    sequence 25% longer than fits unchunked (chunked as a job would chunk it)."""
    budget = free_bytes * fraction
    longest = min(model.longest_unchunked(budget), max_length)
    pair = min(model.longest_unchunked(budget, batch=2), max_length)
    points = [(1, int(longest * 0.6)), (1, int(longest * 0.85)), (1, longest), (2, pair)]
    over = min(int(longest * 1.25), max_length)
    plan = [{"batch": b, "length": n, "chunk": None} for b, n in points]
    if over > longest:
        plan.append({"batch": 1, "length": over, "chunk": model.chunk_for(1, over, budget)})
    for p in plan:
        p["estimate_bytes"] = model.estimate(p["batch"], p["length"], p["chunk"])
    return plan


class Summary:
    """The summary JSON, rewritten after each step."""

    def __init__(self, path: Path, started: float, seconds: float) -> None:
        self.path, self.started, self.seconds = path, started, seconds
        self.data: dict = {"steps": {}, "ok": None}

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def record(self, step: str, result: dict) -> None:
        self.data["steps"][step] = result
        self.data["elapsed_seconds"] = round(time.monotonic() - self.started, 1)
        oks = [r.get("ok") for r in self.data["steps"].values() if "ok" in r]
        self.data["ok"] = all(oks) if oks else None
        self.path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")


def bench_module(name: str) -> ModuleType:
    """A sibling benchmark script (``fold_memory``, ``fold_vs_plain``) as a module."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


# ---------------------------------------------------------------------------- GPU steps
def step_env() -> dict:
    import torch

    dev = torch.device("cuda", torch.cuda.current_device())
    return {"ok": True, "torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(dev),
            "capability": torch.cuda.get_device_capability(dev), "total_gib": torch.cuda.get_device_properties(dev).total_memory / 2**30,
            "alloc_conf": {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")}}  # fmt: skip


def _tiny_engine(precision: str, *, tf32: bool):  # type: ignore[no-untyped-def]
    import torch
    from transformers import EsmForProteinFolding

    from foldatlas.engine import EngineSettings, FoldEngine
    from foldatlas.model import LoadedModel, cast_for_inference, resolve_lm_dtype, tiny_esmfold_config
    from foldatlas.settings import EmbeddingSettings, FoldSettings

    dev = torch.device("cuda", torch.cuda.current_device())
    cfg = tiny_esmfold_config()
    cfg.initializer_range = 0.02  # the scale of trained weights, as the CPU test
    torch.manual_seed(0)
    model = EsmForProteinFolding(cfg).eval().requires_grad_(False)
    dtype = resolve_lm_dtype(precision, dev)
    cast_for_inference(model, dtype)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    loaded = LoadedModel(model.to(dev), "tiny", "check", dev, dtype, "", tf32)
    fold = FoldSettings.from_config({"num_recycles": 1, "save_pae": True})
    settings = EngineSettings.resolve(fold, EmbeddingSettings.from_config({"layers": [-1, 0, 1]}), free_memory=None)
    return FoldEngine(loaded, settings)


def _demo_items() -> list:  # type: ignore[type-arg]
    from foldatlas.fasta import iter_records, sequence_checksum, validate_sequence
    from foldatlas.prediction import SeqItem

    seqs = [validate_sequence(r.body, min_length=1, max_length=10_000).sequence.decode() for r in iter_records(HERE.parent / "resources/demo/proteins.fasta.gz")]
    cut = [s[:n] for s, n in zip(seqs, (30, 90, 45, 70))]  # unsorted lengths: much padding
    return [SeqItem(sequence_checksum(s.encode()), s) for s in cut]


def _max_diffs(batched, single) -> dict:  # type: ignore[no-untyped-def]
    import numpy as np

    d = {k: 0.0 for k in TOLERANCES}
    for b, s in zip(batched, single):
        d["positions"] = max(d["positions"], float(np.abs(b.positions - s.positions).max()))
        d["atom_plddt"] = max(d["atom_plddt"], float(np.abs(b.atom_plddt - s.atom_plddt).max()))
        d["pae"] = max(d["pae"], float(np.abs(b.pae.astype(np.float32) - s.pae.astype(np.float32)).max()))
        d["ptm"], d["plddt"] = max(d["ptm"], abs(b.ptm - s.ptm)), max(d["plddt"], abs(b.plddt - s.plddt))
        d["embeddings"] = max([d["embeddings"]] + [float(np.abs(b.embeddings[k] - s.embeddings[k]).max()) for k in b.embeddings])
    return d


def step_consistency() -> dict:
    import torch

    from foldatlas.model import bf16_native

    out: dict = {"tolerances": TOLERANCES}
    cases = [("fp16", True), ("bf16", True), ("fp32", True), ("fp32", False)]
    for precision, tf32 in cases:
        name = f"{precision}_tf32_{'on' if tf32 else 'off'}"
        if precision == "bf16" and not bf16_native(torch.cuda.get_device_capability()):
            out[name] = {"skipped": "no native bf16 on this GPU"}
            continue
        eng = _tiny_engine(precision, tf32=tf32)
        items = _demo_items()
        batched = eng.predict(items)
        single = [eng.predict([it])[0] for it in items]
        eng.close()
        diffs = _max_diffs(batched, single)
        out[name] = {"max_diff": diffs, "within_cpu_tolerances": all(diffs[k] <= TOLERANCES[k] for k in diffs)}
    # the CPU tests' tolerances are met at least where the CPU test runs (fp32, no TF32)
    out["ok"] = bool(out["fp32_tf32_off"]["within_cpu_tolerances"])
    return out


def step_oom_release() -> dict:
    """OOM inside the trunk after a large allocation: memory back at baseline before the retry."""
    import torch

    eng = _tiny_engine("fp16", tf32=True)
    items = _demo_items()[:2]
    eng.predict(items)  # warm-up: kernels and workspaces allocated once
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    state: dict = {"raised": False, "at_retry": []}

    def explode(module, inputs, output):  # type: ignore[no-untyped-def]
        if not state["raised"]:
            state["raised"] = True
            big = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")  # 2 GiB, held by this frame  # noqa: F841
            state["during"] = torch.cuda.memory_allocated()
            raise torch.OutOfMemoryError("injected by gpu_check inside the trunk")

    def before(module, args, kwargs):  # type: ignore[no-untyped-def]
        if state["raised"]:
            state["at_retry"].append(torch.cuda.memory_allocated())

    hooks = [eng.model.trunk.blocks[0].register_forward_hook(explode), eng.model.register_forward_pre_hook(before, with_kwargs=True)]
    try:
        preds = eng.predict(items)
    finally:
        for h in hooks:
            h.remove()
        eng.close()
    excess = [a - baseline for a in state["at_retry"]]
    ok = bool(excess) and max(excess) <= OOM_SLACK_BYTES and all(p.status == "ok" for p in preds)
    return {"ok": ok, "baseline_bytes": baseline, "during_bytes": state.get("during"), "at_retry_excess_bytes": excess, "slack_bytes": OOM_SLACK_BYTES}


def step_memory(args: argparse.Namespace, summary: Summary) -> tuple[dict, object]:
    import torch

    fold_memory = bench_module("fold_memory")
    eng = fold_memory.build_engine("full_random", "cuda")
    free = torch.cuda.mem_get_info()[0] + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    rows = []
    for p in memory_plan(free, args.fraction, eng.memory):
        if summary.left() < 150:
            rows.append({**p, "skipped": "time"})
            continue
        rows.append({**p, **_measure(fold_memory, eng, p)})
    eng.close()
    measured = [r for r in rows if "measured_bytes" in r]
    ok = bool(measured) and all(r["measured_bytes"] <= r["estimate_bytes"] for r in measured)
    return {"ok": ok, "free_gib_after_load": free / 2**30, "budget_gib": free * args.fraction / 2**30, "points": rows}, eng.loaded


def _measure(fold_memory, eng, p: dict) -> dict:  # type: ignore[no-untyped-def]
    import torch

    try:
        m = fold_memory.measure_cuda(eng, p["batch"], p["length"], p["chunk"])
    except torch.OutOfMemoryError as exc:
        m = {"oom": str(exc).splitlines()[0]}
    if "oom" in m:
        torch.cuda.empty_cache()
        return m
    return {**m, "measured_over_estimate": round(m["measured_bytes"] / p["estimate_bytes"], 3)}


def step_benchmark(args: argparse.Namespace, loaded) -> dict:  # type: ignore[no-untyped-def]
    fold_vs_plain = bench_module("fold_vs_plain")
    seqs = fold_vs_plain.sample(args.bench_n, 30, args.bench_max_len)
    result = fold_vs_plain.benchmark(loaded, seqs, rounds=1)
    result["n"] = len(seqs)
    return {"ok": True, **result}


def run(args: argparse.Namespace) -> dict:
    import torch

    summary = Summary(args.out, time.monotonic(), args.seconds)
    if not torch.cuda.is_available():
        summary.record("env", {"ok": False, "error": f"no CUDA device visible to torch {torch.__version__} (CUDA {torch.version.cuda})"})
        return summary.data
    loaded = None
    for step in STEPS:
        if step in args.skip or (step == "benchmark" and loaded is None):
            continue
        if step == "benchmark" and summary.left() < 100:
            summary.record(step, {"skipped": f"{summary.left():.0f} s left"})
            continue
        t = time.monotonic()
        try:
            if step == "env":
                result = step_env()
            elif step == "consistency":
                result = step_consistency()
            elif step == "oom_release":
                result = step_oom_release()
            elif step == "memory":
                result, loaded = step_memory(args, summary)
            else:
                result = step_benchmark(args, loaded)
        except Exception as exc:  # noqa: BLE001 - recorded; the next steps still run
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - t, 1)
        summary.record(step, result)
    return summary.data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        plan = memory_plan(args.assume_free_gib * 2**30, args.fraction)
        print(json.dumps({"dry_run": True, "steps": [s for s in STEPS if s not in args.skip], "assume_free_gib": args.assume_free_gib,
                          "fraction": args.fraction, "memory_plan": plan}, indent=1))  # fmt: skip
        return 0
    data = run(args)
    print(json.dumps(data, indent=1, default=str))
    return 0 if data.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
