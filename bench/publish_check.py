"""publish_release's check of every new chunk against the plan, at release sizes a decade apart.

Before a release is published, each new chunk's predictions must hold exactly the
sequences the plan put into it. This times that lookup (the plan's checksums of each
chunk, sorted) over a synthetic release of N unique sequences in chunks of
``--per-chunk``: ``foldatlas.store._planned_digests`` (0.6: each chunk's count and
SHA-256 of its sorted checksums, from one stream sorted by chunk and checksum, compared
with the fold job's seal) against the 0.5.0 code, which scanned every key of the release
for each chunk (quadratic; timed on ``--sample`` chunks and scaled to all of them). No
files are read: the seals come on top, one small file per chunk.

Usage: python bench/publish_check.py [--sizes 100000 1000000] [--per-chunk 1800]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

import duckdb

from foldatlas.seal import checksums_digest
from foldatlas.store import _planned_digests


def keys_table(n: int, per_chunk: int, seed: int = 0) -> pa.Table:
    """``checksum, chunk`` of n sequences in chunks of ``per_chunk``, sorted by checksum
    (as ``_release_keys`` returns them)."""
    rng = np.random.default_rng(seed)
    checksums = pa.array([f"{x:032x}" for x in rng.integers(0, 2**63, n)])
    return pa.table({"checksum": checksums, "chunk": pa.array(np.arange(n) // per_chunk)}).sort_by("checksum")


def scan_per_chunk(keys: pa.Table, chunk: int) -> list[str]:
    """The 0.5.0 lookup: every key of the release converted and scanned for one chunk."""
    return sorted(c for c, k in zip(keys["checksum"].to_pylist(), keys["chunk"].to_pylist()) if k == chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--per-chunk", type=int, default=1800, help="sequences per chunk (30 GPU-minutes at ~1 s each)")
    ap.add_argument("--sample", type=int, default=10, help="chunks timed with the 0.5.0 scan")
    args = ap.parse_args()
    print("| unique sequences | chunks | sorted stream s | 0.5.0 scan s (scaled) | ratio |\n| --- | --- | --- | --- | --- |")
    for n in args.sizes:
        keys = keys_table(n, args.per_chunk)
        chunks = -(-n // args.per_chunk)
        con = duckdb.connect()
        con.register("keys", keys)
        t = time.perf_counter()
        planned = _planned_digests(con, "keys", list(range(chunks)))
        new = time.perf_counter() - t
        assert sum(p[0] for p in planned.values()) == n
        sample = min(args.sample, chunks)
        t = time.perf_counter()
        for c in range(sample):
            assert checksums_digest(scan_per_chunk(keys, c)) == planned[c][1]
        old = (time.perf_counter() - t) / sample * chunks
        print(f"| {n:,} | {chunks:,} | {new:.2f} | {old:.1f} | {old / new:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
