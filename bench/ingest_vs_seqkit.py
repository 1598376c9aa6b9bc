"""Ingest benchmark: foldatlas against `seqkit rmdup -s | seqkit sort -l | seqkit split2`.

Generates a metagenome-like FASTA (lengths log-normal around 250, 15% exact duplicates,
60-column lines), then times, in the same run and on the same file:

- foldatlas: read_fasta_file (validate, normalise, checksum every record) + plan_chunks
  (deduplicate out of core, sort by length, cut into chunks, write records/sequences);
- seqkit: rmdup -s (dedup by sequence) | sort -l (by length, in memory) | split2 (chunks).

Wall time and peak resident memory (ru_maxrss of the process tree) of each, at N and 4N
records. Usage: python bench/ingest_vs_seqkit.py [--records 1000000] [--scales 1 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AA = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_unique = int(n * 0.85)
    lengths = np.clip(rng.lognormal(np.log(250), 0.5, n_unique).astype(int), 20, 2000)
    pick = np.concatenate([np.arange(n_unique), rng.integers(0, n_unique, n - n_unique)])
    rng.shuffle(pick)
    pool = rng.choice(AA, size=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with open(path, "wb", buffering=1 << 22) as fh:
        for k, u in enumerate(pick):
            seq = pool[offsets[u] : offsets[u + 1]].tobytes()
            lines = b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
            fh.write(b">MGYP%012d sample=%d length=%d\n%s\n" % (k, u % 97, len(seq), lines))


def timed(cmd: list[str] | str, *, shell: bool = False, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the largest process of a command tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(cmd, shell=shell, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before) / 1024


FOLDATLAS = """
from foldatlas.ingest import read_fasta_file
from foldatlas.chunking import plan_chunks
from foldatlas.settings import ChunkSettings, IngestSettings
out = {out!r}
ingest = IngestSettings.from_config({{"min_length": 1, "max_length": 100000, "threads": 2}})
read_fasta_file({fasta!r}, out + '/part.parquet', source='in.fa', source_index=0, settings=ingest)
plan_chunks([out + '/part.parquet'], records_out=out + '/records.parquet', sequences_out=out + '/sequences.parquet',
            chunks_dir=out + '/chunks', settings=ChunkSettings.from_config({{"gpu_seconds": 1800, "max_sequences": 50000}}),
            memory_gb={memory_gb}, threads=2)
"""


def run_one(tmp: Path, fasta: Path, memory_gb: float) -> dict:
    out = tmp / "fa"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    # each measured in its own child process so ru_maxrss is its own
    code = FOLDATLAS.format(out=str(out), fasta=str(fasta), memory_gb=memory_gb)
    fa = timed_isolated([sys.executable, "-c", code])
    sk_out = tmp / "sk"
    shutil.rmtree(sk_out, ignore_errors=True)
    cmd = f"seqkit rmdup -s -j 2 {fasta} 2>/dev/null | seqkit sort -l -j 2 2>/dev/null | seqkit split2 -s 50000 -O {sk_out} -j 2 2>/dev/null"
    sk = timed_isolated(["bash", "-c", cmd])
    chunks = len(list((out / "chunks").glob("chunk_*.parquet")))
    return {"foldatlas_s": fa[0], "foldatlas_peak_mib": fa[1], "seqkit_s": sk[0], "seqkit_peak_mib": sk[1], "foldatlas_chunks": chunks}


def timed_isolated(cmd: list[str]) -> tuple[float, float]:
    """Run under a fresh Python that reports its children's peak RSS (per-command isolation)."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "subprocess.run(json.loads(sys.argv[1]), check=True, stdout=subprocess.DEVNULL)\n"
        "print(json.dumps([time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe, json.dumps(cmd)], check=True, capture_output=True, text=True)
    wall, peak = json.loads(res.stdout)
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--memory-gb", type=float, default=1.0, help="foldatlas's DuckDB memory limit (ingest.memory_gb)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size; the median is reported")
    args = ap.parse_args()
    if shutil.which("seqkit") is None:
        sys.exit("seqkit not found: apt-get install seqkit")
    version = subprocess.run(["seqkit", "version"], capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rows = []
    try:
        for scale in args.scales:
            n = args.records * scale
            fasta = tmp / f"in_{n}.fa"
            generate(fasta, n)
            runs = [run_one(tmp, fasta, args.memory_gb) for _ in range(args.repeats)]
            r = {k: float(np.median([x[k] for x in runs])) for k in runs[0]}
            r["spread"] = {k: [round(x[k], 2) for x in runs] for k in ("foldatlas_s", "seqkit_s")}
            r.update(records=n, mb=round(fasta.stat().st_size / 1e6, 1))
            rows.append(r)
            fasta.unlink()
            print(json.dumps(r), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{version}, {os.cpu_count()} cores, foldatlas memory limit {args.memory_gb} GB, median of {args.repeats} runs")
    print("| records | FASTA MB | foldatlas s | seqkit s | seqkit/foldatlas time | foldatlas peak MiB | seqkit peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['records']:,} | {r['mb']} | {r['foldatlas_s']:.1f} | {r['seqkit_s']:.1f} | "
            f"{r['seqkit_s'] / r['foldatlas_s']:.2f} | {r['foldatlas_peak_mib']:.0f} | {r['seqkit_peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
