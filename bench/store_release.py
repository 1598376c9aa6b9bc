"""Store benchmark: planning release 2 against the store, against a fresh run over everything.

Generates release 1's input A (``--records`` / 2 records) and release 2's input B
(``--records`` records, a ``--known`` share of them drawn from A's sequences, the rest
new; lengths log-normal around 250, 60-column lines), reads both (``read_fasta_file``),
plans A and records its keys as the store would publish them, then times, in the same
run:

- release 2: ``plan_chunks`` over B with the store's keys (deduplicate, anti-join, sort
  and cut only the new sequences);
- peer, a fresh run over everything: ``plan_chunks`` over A and B without a store (what
  foldatlas 0.3 and any pipeline without a store does: every unique sequence planned).

Reports planning wall time, sequences planned (to be folded), their estimated GPU-hours
(default cost model), and the bytes of release 1 that release 2's planning reads (its
``keys.parquet``), next to release 1's predictions and structures at the sizes the README
gives (0.5 KB + 25 KB per sequence). Usage: python bench/store_release.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AA = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)


def sequences(rng: np.random.Generator, n: int) -> list[bytes]:
    lengths = np.clip(rng.lognormal(np.log(250), 0.5, n).astype(int), 20, 1000)
    pool = rng.choice(AA, size=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [pool[offsets[k] : offsets[k + 1]].tobytes() for k in range(n)]


def write(path: Path, seqs: list[bytes], prefix: bytes) -> None:
    with open(path, "wb", buffering=1 << 22) as fh:
        for k, seq in enumerate(seqs):
            lines = b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
            fh.write(b">%s%012d\n%s\n" % (prefix, k, lines))


PLAN = """
import json, time
from dataclasses import asdict
from foldatlas.chunking import plan_chunks
from foldatlas.settings import ChunkSettings
from foldatlas.layout import StoreLayout
from foldatlas.store import plan_release
args = json.loads({args!r})
known, release = [], {{}}
if args["store"]:
    rel, known = plan_release(StoreLayout(args["store"], "bench"), "", args["key"])
    release = asdict(rel)
t = time.perf_counter()
plans = plan_chunks(args["parts"], records_out=args["out"] + "/records.parquet", sequences_out=args["out"] + "/sequences.parquet",
                    chunks_dir=args["out"] + "/chunks", settings=ChunkSettings.from_config({{}}), memory_gb=4, threads=2,
                    scratch_dir=args["out"] + "/scratch", known=known, release=release)
print(json.dumps({{"seconds": time.perf_counter() - t, "planned": sum(p.n_sequences for p in plans), "chunks": len(plans),
                  "est_gpu_hours": sum(p.est_seconds for p in plans) / 3600}}))
"""


def plan(out: Path, parts: list[Path], store: Path | None) -> dict:
    args = {"out": str(out), "parts": [str(p) for p in parts], "store": str(store) if store else "", "key": json.dumps({"fold": {}})}
    res = subprocess.run([sys.executable, "-c", PLAN.format(args=json.dumps(args))], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def publish_keys(store: Path, sequences: Path) -> Path:
    """Release 1's keys and manifest, as publish_release writes them (no fold outputs)."""
    from foldatlas.atomic import write_json
    from foldatlas.layout import StoreLayout
    from foldatlas.store import FORMAT, _release_keys, _write_buckets
    from foldatlas.tables import KEYS_SCHEMA

    s = StoreLayout(store, "bench")
    keys = _release_keys(sequences, "r0001")
    write_json(s.release_file("r0001"), {"keys": _write_buckets(keys, s.release_keys("r0001"), KEYS_SCHEMA)})
    write_json(s.key, {"fold": {}})
    write_json(s.manifest, {"format": FORMAT, "fingerprint": "bench", "generation": 1, "next_chunk": int(max(keys["chunk"].to_pylist())) + 1,
                            "releases": [{"name": "r0001", "created": "", "new_sequences": keys.num_rows, "sha256": "", "bytes": 0}]})  # fmt: skip
    return s.release_keys("r0001")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--known", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()
    from foldatlas.ingest import read_fasta_file
    from foldatlas.settings import IngestSettings

    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        a = sequences(rng, args.records // 2)
        n_known = int(args.records * args.known)
        b = [a[i] for i in rng.integers(0, len(a), n_known)] + sequences(rng, args.records - n_known)
        ingest = IngestSettings.from_config({"min_length": 1, "max_length": 100000, "threads": 2})
        parts = []
        for name, seqs in (("a", a), ("b", b)):
            write(tmp / f"{name}.fa", seqs, name.encode())
            read_fasta_file(tmp / f"{name}.fa", tmp / f"{name}.parquet", source=f"{name}.fa", source_index=len(parts), settings=ingest)
            parts.append(tmp / f"{name}.parquet")
        first = plan(tmp / "r1", parts[:1], tmp / "store")  # an empty store: release r0001 plans everything
        keys = publish_keys(tmp / "store", tmp / "r1/sequences.parquet")
        release2 = plan(tmp / "r2", parts[1:], tmp / "store")
        fresh = plan(tmp / "fresh", parts, None)
        new_unique = len({s for s in b} - set(a))
        result = {
            "records_release_2": args.records, "known_share": args.known, "release_1_unique": first["planned"],
            "release_2": release2, "fresh_over_everything": fresh, "release_2_new_unique_expected": new_unique,
            "bytes_read_from_release_1": sum(f.stat().st_size for f in keys.glob("*.parquet")),
            "release_1_fold_outputs_bytes_at_readme_sizes": first["planned"] * (512 + 25_000),
            "planning_time_ratio_fresh_over_release_2": round(fresh["seconds"] / release2["seconds"], 2),
            "folds_ratio_release_2_over_fresh": round(release2["planned"] / fresh["planned"], 3),
        }  # fmt: skip
        assert release2["planned"] == new_unique, (release2["planned"], new_unique)
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
