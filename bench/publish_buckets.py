"""Publishing one checksum bucket a job (0.7), against publishing the release in one job.

Since 0.7 the workflow publishes a release with one ``publish_bucket`` job per checksum
bucket of its plan (``chunks.bucket_digits``: each checks its own chunks against the plan
and writes its bucket files into a staging folder of the store) and one light
``publish_release`` job (``finish_release``: links the staged files into the release
folder, counts the release, replaces the manifest). This times, on one synthetic store
(``bench/scale_jobs.py``'s: the real ``fold_chunk`` with a stand-in engine; ``--root``
takes a folder it kept, ``--size`` makes one), alternately:

- the one call ``publish_release`` (every bucket one after the other, then the finish:
  the work of 0.6's single job);
- each ``publish_bucket`` call and the ``finish_release`` call on their own.

Each run starts from the store as the fold jobs left it (releases removed). The plan must
be split into buckets (``auto`` splits from 256 estimated chunks: 10^6 records are).

Usage: python bench/publish_buckets.py --root /tmp/bench-scale-1000000-xxxx [--repeat 2]
       python bench/publish_buckets.py --size 1000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from publish_sealed import make_store, unpublish  # bench/, the script's folder


def one_call(root: Path) -> float:
    from foldatlas.layout import RELEASE_FILE
    from foldatlas.store import publish_release

    store, layout, receipt = unpublish(root)
    start = time.perf_counter()
    publish_release(store, planned=f"{layout.chunks}/{RELEASE_FILE}", sequences=layout.sequences, inputs=layout.inputs, receipt=receipt)
    return time.perf_counter() - start


def per_bucket(root: Path) -> tuple[list[float], float]:
    from foldatlas.layout import RELEASE_FILE
    from foldatlas.store import finish_release, publish_bucket, release_buckets

    store, layout, receipt = unpublish(root)
    planned = f"{layout.chunks}/{RELEASE_FILE}"
    args = {"planned": planned, "sequences": layout.sequences, "inputs": layout.inputs}
    parts, times = [], []
    for b in release_buckets(planned):
        parts.append(root / f"parts/{b}.json")
        start = time.perf_counter()
        publish_bucket(store, b, **args, part=parts[-1])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    finish_release(store, **args, parts=parts, receipt=receipt)
    return times, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="a folder bench/scale_jobs.py --keep left")
    ap.add_argument("--size", type=int, default=1_000_000, help="records of the store to make when --root is not given")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    root = args.root or make_store(args.size, "ca")
    whole, buckets, finish = [], [], []
    for _ in range(args.repeat):  # alternate, so that neither gets a warmer cache
        whole.append(one_call(root))
        b, f = per_bucket(root)
        buckets.append(b)
        finish.append(f)
    best = min(range(args.repeat), key=lambda k: sum(buckets[k]) + finish[k])
    b = buckets[best]
    print(f"{root}: {len(b)} buckets")
    print("| what | s (best of %d) |" % args.repeat)
    print("| --- | ---: |")
    print(f"| publish_release in one call (0.6's one job) | {min(whole):.1f} |")
    print(f"| publish_bucket: slowest / median / sum of {len(b)} | {max(b):.2f} / {sorted(b)[len(b) // 2]:.2f} / {sum(b):.1f} |")
    print(f"| finish_release | {finish[best]:.2f} |")


if __name__ == "__main__":
    main()
