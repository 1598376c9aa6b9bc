"""The sequence clustering in segments (``mmseqs.segments``, foldatlas.segments) against one
``mmseqs linclust`` over every sequence (the peer): each job's wall time and peak memory
(anonymous memory per mmseqs step, from /proc), the number of clusters, and how many
members pass the thresholds against their representative when aligned again exactly.

    python bench/sequence_segments.py --sequences 20000 200000 --segments 4 16

Sequences: synthetic families (log-normal lengths around 250; 1-11 variants a family,
each with 5-60% of its residues replaced and up to a fifth cut from each end: pairs
from well above to below 30% identity, and members shorter than their family's longest).
Every job runs as the rule runs it, in a fresh Python with the memory the sizing asks for
(``--split-memory-limit``), one at a time; ``critical_path_s`` is when the merge would
end with a node for every ready job (a round's cluster job waits for what the previous
round left of its segment, an assignment for its round and the previous assignment of
its segment). The exact check aligns every member with its representative
(``mmseqs align -a --alignment-mode 3``): identity (``fident``) at least ``min_seq_id``
and the member covered at least ``coverage`` (clust30: ``--cov-mode 1``). One JSON line
per measurement on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from annotate_sizes import _PEAK, REPO, _child  # bench/, the script's folder

AA = "ACDEFGHIKLMNPQRSTVWY"


def make_sequences(n: int, path: str, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from foldatlas.fasta import sequence_checksum

    rng = np.random.default_rng(seed)
    seqs: list[str] = []
    while len(seqs) < n:
        base = rng.integers(0, 20, int(np.clip(rng.lognormal(np.log(250), 0.5), 30, 1000)))
        for _ in range(int(rng.integers(1, 12))):
            v = base.copy()
            mut = rng.random(len(v)) < rng.uniform(0.05, 0.6)
            v[mut] = rng.integers(0, 20, int(mut.sum()))
            a, b = int(rng.integers(0, max(1, len(v) // 5))), len(v) - int(rng.integers(0, max(1, len(v) // 5)))
            seqs.append("".join(AA[i] for i in v[a:b]))
    seqs = list(dict.fromkeys(seqs[:n]))
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs, "length": [len(s) for s in seqs]}), path)


def _job(kind: str, call: str, size_expr: str, threads: int, max_mem_mb: int) -> str:
    return f"""
from pathlib import Path
from foldatlas.annotate import mmseqs_linclust
from foldatlas.segments import split_segments, cluster_segment, assign_segment, merge_segments
from foldatlas.settings import MmseqsSettings
from foldatlas.sizing import job_size, mem_mb
settings = MmseqsSettings.from_config({{}})
size = job_size({kind!r}, {size_expr})
ask = mem_mb({kind!r}, size, attempt=1, max_mem_mb={max_mem_mb}, kmer_per_seq=100)
threads = {threads}
{call}
{_PEAK}
print(json.dumps({{"job": {kind!r}, "sequences": size.sequences, "asked_mb": ask, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""


def _anon_peak(res: dict) -> int:
    return max((s["anon"] for s in res.pop("steps").values()), default=0)


def run_one(seqs: Path, work: Path, threads: int, max_mem_mb: int) -> dict:
    call = f"mmseqs_linclust('mmseqs', {str(seqs)!r}, {str(work / 'one.parquet')!r}, settings=settings, threads=threads, mem_mb=ask)"
    res = _child(_job("mmseqs_cluster", call, repr(str(seqs)), threads, max_mem_mb))
    res["anon_peak_mib"] = _anon_peak(res)
    return res


def run_segments(seqs: Path, work: Path, p: int, threads: int, max_mem_mb: int) -> list[dict]:
    w = work / f"segments_{p}"
    call = f"split_segments({str(seqs)!r}, {str(w / 'split')!r}, segments={p}, max_mem_mb={max_mem_mb})"
    jobs = [_child(_job("mmseqs_split_segments", call, repr(str(seqs)), 1, max_mem_mb))]
    left = {s: w / "split" / f"segment_{s}" for s in range(p)}
    pairs = []
    for r in range(p):
        out = w / f"round_{r}"
        pairs.append(str(w / f"round_{r}.parquet"))
        call = f"cluster_segment('mmseqs', {str(left[r])!r}, {str(out)!r}, {pairs[-1]!r}, settings=settings, threads=threads, mem_mb=ask)"
        jobs.append(_child(_job("mmseqs_cluster_segment", call, repr(str(left[r])), threads, max_mem_mb)) | {"round": r})
        for s in range(r + 1, p):
            nxt = w / f"assign_{r}_{s}"
            pairs.append(str(w / f"assign_{r}_{s}.parquet"))
            call = f"assign_segment('mmseqs', {str(out)!r}, {str(left[s])!r}, {str(nxt)!r}, {pairs[-1]!r}, settings=settings, threads=threads, mem_mb=ask)"
            jobs.append(_child(_job("mmseqs_assign_segment", call, repr([str(out), str(left[s])]), threads, max_mem_mb)) | {"round": r, "segment": s})
            left[s] = nxt
    call = f"merge_segments({str(seqs)!r}, {pairs!r}, {str(w / 'clusters.parquet')!r}, threads=threads, mem_mb=ask)"
    jobs.append(_child(_job("mmseqs_merge_segments", call, repr(str(seqs)), threads, max_mem_mb)))
    for j in jobs:
        j["anon_peak_mib"] = _anon_peak(j)
    return jobs


def critical_path(jobs: list[dict], p: int) -> float:
    """When the merge would finish with a node for every ready job: a round's cluster job
    waits for what the previous round left of its segment, an assignment for its round's
    cluster job and the previous assignment of its segment."""
    split, merge = jobs[0]["wall_s"], jobs[-1]["wall_s"]
    wall = {(j["round"], j.get("segment")): j["wall_s"] for j in jobs if "round" in j}
    left = {s: split for s in range(p)}  # when what is left of segment s is ready
    done = 0.0
    for r in range(p):
        clustered = left[r] + wall[(r, None)]
        done = max(done, clustered)
        for s in range(r + 1, p):
            left[s] = max(clustered, left[s]) + wall[(r, s)]
            done = max(done, left[s])
    return done + merge


def exact_check(seqs: Path, clusters: Path, work: Path, threads: int, min_seq_id: float = 0.3, coverage: float = 0.8) -> dict:
    """Members (not representatives) whose exact alignment with their representative
    passes the thresholds."""
    import duckdb
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        t = Path(tmp)
        table = pq.read_table(seqs, columns=["checksum", "sequence"])
        with open(t / "all.fasta", "w") as fh:
            fh.writelines(f">{c}\n{s}\n" for c, s in zip(*table.to_pydict().values()))
        subprocess.run(["mmseqs", "createdb", t / "all.fasta", t / "db", "-v", "1"], check=True)
        con = duckdb.connect()
        con.execute(f"CREATE TABLE lk AS SELECT column0::BIGINT AS key, column1 AS name FROM read_csv('{t / 'db.lookup'}', delim='\t', header=false)")
        pairs = con.execute(f"""SELECT r.key AS rk, m.key AS mk FROM read_parquet('{clusters}') c JOIN lk r ON r.name = c.representative
                                JOIN lk m ON m.name = c.member WHERE c.member <> c.representative ORDER BY rk, mk""").fetchall()
        with open(t / "pairs.tsv", "w") as fh:
            fh.writelines(f"{a}\t{b}\n" for a, b in pairs)
        subprocess.run(["mmseqs", "tsv2db", t / "pairs.tsv", t / "pairs", "--output-dbtype", "5", "-v", "1"], check=True)
        subprocess.run(["mmseqs", "align", t / "db", t / "db", t / "pairs", t / "aln", "-a", "--alignment-mode", "3", "-e", "inf", "--min-seq-id", "0",
                        "-c", "0", "--cov-mode", "0", "--threads", str(threads), "-v", "1"], check=True)  # fmt: skip
        subprocess.run(["mmseqs", "convertalis", t / "db", t / "db", t / "aln", t / "aln.tsv", "--format-output", "query,target,fident,tcov", "-v", "1"], check=True)
        aligned = con.execute(f"""SELECT count(DISTINCT target), count(DISTINCT target) FILTER (WHERE fident >= {min_seq_id} AND tcov >= {coverage})
                                  FROM read_csv('{t / 'aln.tsv'}', delim='\t', header=false, columns={{'query': 'VARCHAR', 'target': 'VARCHAR', 'fident': 'DOUBLE', 'tcov': 'DOUBLE'}})""").fetchall()[0]  # fmt: skip
    return {"members": len(pairs), "aligned": aligned[0], "within_thresholds": aligned[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, nargs="+", default=[20000])
    ap.add_argument("--segments", type=int, nargs="+", default=[4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-mem-mb", type=int, default=16000)
    ap.add_argument("--work", type=Path, default=None, help="keep the inputs and outputs here")
    ap.add_argument("--make", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make:
        make_sequences(int(a.make[1]), a.make[2])
        return
    import pyarrow.parquet as pq

    for n in a.sequences:
        work = (a.work or Path(tempfile.mkdtemp(prefix="segments-bench-"))) / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        seqs = work / "seqs.parquet"
        if not seqs.exists():
            subprocess.run([sys.executable, __file__, "--make", "make_sequences", str(n), str(seqs)], check=True, cwd=REPO)
        one = run_one(seqs, work, a.threads, a.max_mem_mb)
        one_clusters = pq.read_table(work / "one.parquet", columns=["cluster_id"]).column(0).to_numpy().max() + 1
        print(json.dumps({"sequences": n, "segments": 1, "clusters": int(one_clusters), **one, **exact_check(seqs, work / "one.parquet", work, a.threads)}), flush=True)
        for p in a.segments:
            jobs = run_segments(seqs, work, p, a.threads, a.max_mem_mb)
            clusters = work / f"segments_{p}" / "clusters.parquet"
            n_clusters = pq.read_table(clusters, columns=["cluster_id"]).column(0).to_numpy().max() + 1
            critical = critical_path(jobs, p)
            linclust = [j for j in jobs if j["job"] in ("mmseqs_cluster_segment", "mmseqs_assign_segment")]
            print(json.dumps({
                "sequences": n, "segments": p, "clusters": int(n_clusters), "jobs": len(jobs), "total_s": round(sum(j["wall_s"] for j in jobs), 1),
                "critical_path_s": round(critical, 1), "longest_job_s": max(j["wall_s"] for j in linclust), "largest_job_sequences": max(j["sequences"] for j in linclust),
                "largest_job_anon_peak_mib": max(j["anon_peak_mib"] for j in linclust), "largest_job_tool_peak_mib": max(j["tool_peak_mib"] for j in linclust),
                "split_s": jobs[0]["wall_s"], "merge_s": jobs[-1]["wall_s"], "merge_python_peak_mib": jobs[-1]["python_peak_mib"],
                **exact_check(seqs, clusters, work, a.threads),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
