"""Redundancy benchmark: plan_chunks with ingest.redundancy cluster90 on real proteins,
against plain MMseqs2 on the same sequences.

Input: the 20,000 UniProtKB sequences of Debian's mmseqs2-examples
(``/usr/share/doc/mmseqs2/example-data/DB.fasta.gz``, or ``--fasta``). Times, in the
same run:

- foldatlas: ``read_fasta_file`` + ``plan_chunks`` with ``cluster90`` (deduplicate,
  linclust, align every member to its representative, cut the representatives into
  chunks, write sequences.parquet with every member resolved);
- peer: ``mmseqs easy-linclust`` with the same thresholds on the same file (clusters only:
  no deduplication, validation, alignment of members or chunks).

Reports unique sequences, representatives, members, the share of folds saved, the
estimated GPU-hours saved (default cost model) and both wall times with their ratio.
Usage: python bench/redundancy.py [--fasta PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from foldatlas.chunking import plan_chunks
from foldatlas.ingest import read_fasta_file
from foldatlas.redundancy import MODES, Redundancy
from foldatlas.settings import ChunkSettings, IngestSettings

UNIPROT = Path("/usr/share/doc/mmseqs2/example-data/DB.fasta.gz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fasta", type=Path, default=UNIPROT)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        started = time.monotonic()
        part, count = t / "part.parquet", t / "count.json"
        read_fasta_file(args.fasta, part, source=args.fasta.name, source_index=0, settings=IngestSettings.from_config({"max_length": 100000, "min_length": 1}),
                        workers=args.threads, count_out=count)  # fmt: skip
        plans = plan_chunks([part], records_out=t / "records.parquet", sequences_out=t / "sequences.parquet", chunks_dir=t / "chunks",
                            settings=ChunkSettings.from_config({}), memory_gb=2, threads=args.threads, counts=[count],
                            redundancy=Redundancy(MODES["cluster90"], shutil.which("mmseqs") or "mmseqs"))  # fmt: skip
        ours = time.monotonic() - started
        seqs = pq.read_table(t / "sequences.parquet", columns=["representative", "est_seconds"]).to_pydict()
        members = sum(r is not None for r in seqs["representative"])
        saved = sum(e for r, e in zip(seqs["representative"], seqs["est_seconds"]) if r is not None) / 3600
        total = sum(seqs["est_seconds"]) / 3600
        th = MODES["cluster90"]
        started = time.monotonic()
        subprocess.run(["mmseqs", "easy-linclust", args.fasta, t / "peer", t / "peer_tmp", "--min-seq-id", str(th.identity), "-c", str(th.coverage),
                        "--cov-mode", "0", "--cluster-mode", "2", "--threads", str(args.threads)], check=True, capture_output=True)  # fmt: skip
        peer = time.monotonic() - started
        peer_reps = sum(1 for line in open(t / "peer_rep_seq.fasta") if line.startswith(">"))
    n = len(seqs["representative"])
    print(f"input: {args.fasta} ({args.threads} threads)")
    print(f"unique sequences {n:,}; representatives {n - members:,}; members {members:,}; folds saved {members / n:.1%}")
    print(f"estimated GPU-hours: {total:.2f} without redundancy reduction, {total - saved:.2f} with it ({saved:.2f} saved)")
    print(f"foldatlas plan_chunks with cluster90: {ours:.1f} s, {sum(p.n_sequences for p in plans):,} sequences planned in {len(plans)} chunks")
    print(f"peer mmseqs easy-linclust (same thresholds, clusters only): {peer:.1f} s, {peer_reps:,} representatives; ratio {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
