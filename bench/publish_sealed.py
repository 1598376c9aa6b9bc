"""publish_release reading the fold jobs' seals, against hashing and reading tar headers itself.

A fold job writes its chunk's seal last (``index.parquet``, :mod:`foldatlas.seal`): the
SHA-256 of its three files and every structure's byte range, checked against its tar
header. This times ``publish_release`` over one release of a synthetic store twice on the
same files: with the seals as the fold jobs wrote them, and with the seals removed, so
that publishing computes them itself (what it did for every chunk before foldatlas 0.6:
hash every new byte, read one tar header per structure; the run also writes the seals).
Each run starts from the store as the fold jobs left it (the release folder and manifest
entry removed). The store is ``bench/scale_jobs.py``'s (made by the real ``fold_chunk``
with a stand-in engine): ``--root`` takes a folder it kept, ``--size`` makes one.

Usage: python bench/publish_sealed.py --size 1000000 [--atoms ca|full] [--repeat 2]
       python bench/publish_sealed.py --root /tmp/bench-scale-1000000-xxxx
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_store(size: int, atoms: str) -> Path:
    """A kept scale_jobs folder of ``size`` records, folded and published once."""
    out = Path(f"/tmp/publish-sealed-{size}.json")
    cmd = [sys.executable, str(REPO / "bench/scale_jobs.py"), "--sizes", str(size), "--keep", "--upto", "publish_release", "--atoms", atoms, "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    kept = [ln.split()[-1] for ln in res.stdout.splitlines() + res.stderr.splitlines() if ln.startswith("kept ")]
    return Path(kept[-1])


def unpublish(root: Path) -> tuple[object, object, Path]:
    """Undo the publication: the manifest without the release, its folder removed."""
    from foldatlas.layout import Layout, StoreLayout

    results = root / "results"
    part = next(p for p in (results / "store").iterdir() if p.is_dir())
    store = StoreLayout(results / "store", part.name)
    m = json.loads(store.manifest.read_text())
    for r in m["releases"]:
        shutil.rmtree(store.release_dir(r["name"]), ignore_errors=True)
    store.manifest.write_text(json.dumps({**m, "generation": 0, "next_chunk": 0, "releases": []}))
    return store, Layout(results), results / "release.json"


def publish_once(root: Path, *, sealed: bool) -> float:
    from foldatlas.layout import RELEASE_FILE
    from foldatlas.store import publish_release

    store, layout, receipt = unpublish(root)
    if not sealed:
        for seal in (store.dir / "chunks").glob("chunk_*/index.parquet"):
            seal.unlink()
    start = time.perf_counter()
    publish_release(store, planned=f"{layout.chunks}/{RELEASE_FILE}", sequences=layout.sequences, inputs=layout.inputs, receipt=receipt)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="a folder bench/scale_jobs.py --keep left")
    ap.add_argument("--size", type=int, default=100_000, help="records of the store to make when --root is not given")
    ap.add_argument("--atoms", choices=["ca", "full"], default="ca", help="atoms per residue of the stand-in structures (scale_jobs.py)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    root = args.root or make_store(args.size, args.atoms)
    chunks = len(list((root / "results/store").glob("*/chunks/chunk_*")))
    store_gb = sum(p.stat().st_size for p in (root / "results/store").rglob("chunks/*/*")) / 1e9
    times = {"sealed": [], "unsealed": []}
    for _ in range(args.repeat):  # alternate, so that neither gets a warmer cache
        for mode in times:
            times[mode].append(publish_once(root, sealed=mode == "sealed"))
    best = {k: min(v) for k, v in times.items()}
    print(f"{root}: {chunks} chunks, {store_gb:.2f} GB of chunk files")
    print("| publish_release | best of %d, s |" % args.repeat)
    print("| --- | --- |")
    print(f"| reading the fold jobs' seals (0.6) | {best['sealed']:.1f} |")
    print(f"| hashing the files and reading every tar header (as before 0.6; writes the seals too) | {best['unsealed']:.1f} |")
    print(f"ratio: {best['unsealed'] / best['sealed']:.1f}x")


if __name__ == "__main__":
    main()
