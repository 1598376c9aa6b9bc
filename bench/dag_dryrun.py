"""How long `snakemake -n` takes to build the DAG for 10^3, 10^4 and 10^5 chunks.

A working directory is made with a finished ingest (records, sequences, a plan of N
chunks, N empty chunk files), so that the dry run evaluates the plan_chunks checkpoint
and schedules N fold_chunk jobs (or N / K fold_package jobs with ``--chunks-per-job K``,
``fold.chunks_per_job``), 256 publish_bucket jobs (the plan's chunks in 256 checksum
buckets), 256 assemble_bucket and 256 bucket_metadata jobs (the atlas in 256 buckets)
plus the other atlas rules, exactly as a real run of that size would.
Usage: python bench/dag_dryrun.py [--chunks 1000 10000 100000] [--chunks-per-job 1]
[--persistence-backend file db] (Snakemake's metadata in files, its default, or in a
SQLite database under .snakemake/; each backend gets a fresh working directory).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from foldatlas.tables import RECORDS_SCHEMA, SEQUENCES_SCHEMA

REPO = Path(__file__).resolve().parents[1]


def make_workdir(root: Path, n: int, per_job: int = 1) -> Path:
    import pyarrow.parquet as pq

    from foldatlas.atomic import write_json
    from foldatlas.chunking import ChunkPlan, chunk_content, write_plan
    from foldatlas.inputs import count_file

    wd = root / f"n{n}"
    (wd / "config").mkdir(parents=True)
    (wd / "config/config.yaml").write_text((REPO / "config/config.yaml").read_text())
    (wd / "in.fa").write_text(">a\nMKTAYIAKQRQISFVKSHFSRQ\n")
    # the atlas in 256 checksum buckets as well (what auto gives an atlas of 10^9 records):
    # 256 assemble_bucket and 256 bucket_metadata jobs
    (wd / "run.yaml").write_text(yaml.safe_dump({"input": {"fasta": ["in.fa"]}, "foldseek": {"enabled": False}, "fold": {"chunks_per_job": per_job},
                                                  "atlas": {"bucket_digits": 2}}))  # fmt: skip
    old = time.time() - 3600
    os.utime(wd / "in.fa", (old, old))
    chunks = wd / "results/chunks"
    chunks.mkdir(parents=True)
    (wd / "results/ingest").mkdir(parents=True)
    pq.write_table(RECORDS_SCHEMA.empty_table(), wd / "results/ingest/records.parquet")
    pq.write_table(SEQUENCES_SCHEMA.empty_table(), wd / "results/ingest/sequences.parquet")
    write_json(wd / "results/ingest/inputs.json", {"files": [asdict(count_file(wd / "in.fa", source="in.fa"))]})
    # chunks in 256 checksum buckets (chunks.bucket_digits: auto splits a plan this
    # large into two hex digits), numbered in bucket order: 256 publish_bucket jobs
    buckets = [f"{k * 256 // n:02x}" for k in range(n)]
    write_plan(chunks / "plan.tsv", [ChunkPlan(k, 1000, 250000, 200, 300, 1800.0, chunk_content([str(k)]), buckets[k]) for k in range(n)])
    release = {"name": "r0001", "fingerprint": "", "first_chunk": 0, "generation": 0, "chunks": list(range(n)), "bucket_digits": 2, "buckets": buckets}
    write_json(chunks / "release.json", release)
    for k in range(n):
        (chunks / f"chunk_{k:06d}.parquet").touch()
    return wd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--chunks-per-job", type=int, default=1, help="fold.chunks_per_job (fold packages)")
    ap.add_argument("--persistence-backend", nargs="+", choices=["file", "db"], default=["file"])
    args = ap.parse_args()
    rule = "fold_chunk" if args.chunks_per_job == 1 else "fold_package"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        for n in args.chunks:
            for backend in args.persistence_backend:
                t = time.perf_counter()
                wd = make_workdir(Path(tmp) / backend, n, args.chunks_per_job)
                print(f"{n} chunks: work directory made in {time.perf_counter() - t:.1f} s", flush=True)
                cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                       "--configfile", "run.yaml", "--rerun-triggers", "mtime", "--quiet", "rules",
                       "--persistence-backend", backend]  # fmt: skip
                t = time.perf_counter()
                res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if res.returncode != 0:
                    sys.exit(res.stdout[-3000:] + res.stderr[-3000:])
                jobs = next((ln for ln in res.stdout.splitlines() if ln.startswith(rule)), "").split()
                rows.append((n, backend, wall, jobs[-1] if jobs else "?"))
                print(f"{n} chunks, {backend} persistence: {wall:.1f} s, {rule} jobs: {rows[-1][3]}", flush=True)
    print(f"\n| chunks | chunks per job | persistence | dry-run wall s | {rule} jobs |\n| --- | --- | --- | --- | --- |")
    for n, backend, wall, jobs in rows:
        print(f"| {n:,} | {args.chunks_per_job} | {backend} | {wall:.1f} | {jobs} |")


if __name__ == "__main__":
    main()
