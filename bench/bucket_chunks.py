"""What it costs to keep each chunk within one checksum bucket (``chunks.bucket_digits``).

Issue 17 asks that a chunk take sequences of one bucket only, so that assembly can later
run per bucket, "at almost no cost at scale". This measures that cost against the plain
length sort (``bucket_digits: 0``, what foldatlas did up to 0.6), two ways:

1. **The cut** (``--sizes``): N unique sequences with lengths log-normal around 250 aa
   (clipped to 20..1000, as ``bench/scale_jobs.py`` writes them) and uniform random
   checksums, cut by the real :class:`foldatlas.chunking.ChunkCutter` logic with the
   default ``chunks`` settings (1800 s of estimated work, at most 50,000 sequences) into
   chunks of 0, 1 and 2 bucket digits and what ``auto`` picks. Reported per cut:
   - the fold jobs (chunks), and the share of them not filled to 90% of the budget;
   - padding in the fold jobs: each chunk is batched as a fold job batches on a GPU
     (:func:`foldatlas.batching.make_batches`, 4096 tokens and 64 sequences a batch,
     ``fold.max_tokens_per_batch: 0`` on a GPU), and the cost model's seconds of every
     padded batch (batch size x the cost of its longest sequence) are summed, against
     the sum over the sequences themselves. A chunk of one bucket spans a wider range
     of lengths than a chunk of the plain sort, so its batches pad more.
2. **Planning** (``--plan N``): the real ``plan_chunks`` over N records (read by the
   real ``read_fasta_file`` from ``bench/scale_jobs.py``'s synthetic FASTA), timed with
   ``bucket_digits`` 0 and ``auto`` alternately in one process, ``--repeat`` times each
   (``auto`` adds a histogram of the new sequences' lengths and sorts by bucket first).

Usage: python bench/bucket_chunks.py [--sizes 100000 1000000 10000000] [--plan 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from foldatlas.batching import make_batches
from foldatlas.chunking import ChunkCutter, bucket_digits
from foldatlas.settings import ChunkSettings

TOKENS, BATCH = 4096, 64


def cut(lengths: np.ndarray, buckets: np.ndarray, settings: ChunkSettings, digits: int) -> np.ndarray:
    """Chunk ids of sequences sorted by (bucket, length), as ChunkCutter cuts them."""
    b = buckets >> (8 - 4 * digits) if digits else np.zeros_like(buckets)
    order = np.lexsort((lengths, b))
    with ThreadPoolExecutor(1) as pool:
        cutter = ChunkCutter(Path("."), settings, pool, digits=digits)
        ids = np.empty(len(lengths), dtype=np.int64)
        step = 1 << 17  # the stream's batches
        for s in range(0, len(order), step):
            sel = order[s : s + step]
            ids[sel] = cutter._assign(settings.cost.seconds(lengths[sel]), b[sel])
    return ids


def padded_seconds(lengths: np.ndarray, ids: np.ndarray, settings: ChunkSettings) -> float:
    """The cost model's seconds of every fold job's padded batches."""
    order = np.lexsort((lengths, ids))
    ls, cs = lengths[order], ids[order]
    bounds = np.flatnonzero(np.diff(cs)) + 1
    total = 0.0
    for chunk in np.split(ls, bounds):
        for batch in make_batches(chunk.tolist(), max_tokens=TOKENS, max_pair_tokens=1 << 62, max_batch_size=BATCH):
            total += len(batch) * float(settings.cost.seconds(np.array([chunk[batch[-1]]]))[0])
    return total


def cut_table(sizes: list[int], seed: int) -> None:
    settings = ChunkSettings.from_config({})
    print(f"| sequences | bucket digits | fold jobs | jobs under 90% full | padded / exact seconds | padding vs. digits 0 |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for n in sizes:
        rng = np.random.default_rng(seed)
        lengths = np.clip(rng.lognormal(np.log(250), 0.5, n).astype(np.int64), 20, 1000)
        buckets = rng.integers(0, 256, n)  # the first two hex digits of uniform MD5s
        exact = float(np.sum(settings.cost.seconds(lengths)))
        estimate = min(n, exact / settings.gpu_seconds)
        auto = bucket_digits("auto", estimate)
        base = None
        for digits in (0, 1, 2):
            t = time.monotonic()
            ids = cut(lengths, buckets, settings, digits)
            work = np.bincount(ids - ids.min(), weights=settings.cost.seconds(lengths))
            padded = padded_seconds(lengths, ids, settings)
            base = padded if digits == 0 else base
            label = f"{digits}{' (auto)' if digits == auto else ''}"
            under = float(np.mean(work < 0.9 * settings.gpu_seconds))
            print(f"| {n:,} | {label} | {len(work):,} | {under:.1%} | {padded / exact:.4f} | {padded / base - 1:+.2%} |", flush=True)
            print(f"  ({time.monotonic() - t:.1f} s)", file=sys.stderr)


def plan_times(n: int, repeat: int) -> None:
    from scale_jobs import write_inputs  # bench/, the script's folder

    from foldatlas.chunking import plan_chunks
    from foldatlas.ingest import read_fasta_file
    from foldatlas.settings import IngestSettings

    ingest = IngestSettings.from_config({})
    with tempfile.TemporaryDirectory(prefix="bucket-chunks-") as tmp:
        root = Path(tmp)
        parts = []
        for k, path in enumerate(write_inputs(root, n, files=2, dup=0.2)):
            parts.append(root / f"part{k}.parquet")
            read_fasta_file(path, parts[-1], source=path.name, source_index=k, settings=ingest, workers=2)
        times: dict[object, list[float]] = {0: [], "auto": []}
        chunks: dict[object, tuple[int, int]] = {}
        for _ in range(repeat):
            for setting in times:
                out = root / f"plan-{setting}"
                out.mkdir(exist_ok=True)
                t = time.monotonic()
                plans = plan_chunks(parts, records_out=out / "records.parquet", sequences_out=out / "sequences.parquet", chunks_dir=out / "chunks",
                                    settings=ChunkSettings.from_config({"bucket_digits": setting}), memory_gb=ingest.memory_gb, threads=2,
                                    scratch_dir=root / "scratch")  # fmt: skip
                times[setting].append(time.monotonic() - t)
                chunks[setting] = (len(plans), max((len(p.bucket) for p in plans), default=0))
    print(f"\nplan_chunks over {n:,} records (ingest.memory_gb {ingest.memory_gb}, 2 threads), {repeat} runs each, alternating:")
    for setting, ts in times.items():
        print(f"- bucket_digits {setting}: {chunks[setting][0]} chunks of {chunks[setting][1]} digits; {', '.join(f'{t:.1f} s' for t in ts)} (best {min(ts):.1f} s)")
    print(f"- auto / 0, best of each: {min(times['auto']) / min(times[0]):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--plan", type=int, default=0, help="also time plan_chunks over this many records")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.sizes:
        cut_table(args.sizes, args.seed)
    if args.plan:
        plan_times(args.plan, args.repeat)


if __name__ == "__main__":
    main()
