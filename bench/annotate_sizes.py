"""Annotation jobs against the sizing formula (foldatlas.sizing): wall time and peak memory
of mmseqs linclust (ESM Atlas clust30 settings) and of foldseek createdb / cluster, at
sizes a decade apart, with the memory the formula asks for beside each.

    python bench/annotate_sizes.py --sequences 20000 200000 --structures 300 3000
    python bench/annotate_sizes.py --sequences --structures 200000 --folds varied --cgroup-mb 2500
    (foldseek: put it on PATH, e.g. PATH=/opt/foldseek-local/bin:$PATH)

Sequences: synthetic families (log-normal lengths around 250, 5 variants at ~90%
identity per family). Structures: ideal helices of 60-300 residues in 1000-member
shards (all align: cluster's worst case for time), or with ``--folds varied`` backbones
of ideal geometry whose torsions run in segments of helix, strand, polyproline and
random loop (mostly unrelated, as in an atlas). ``--cgroup-mb`` caps foldseek_cluster's
request and runs it under that as a hard cgroup limit (bench/in_cgroup.sh: root, cgroup
v1), as Slurm's task/cgroup enforces ``--mem``; ``--work`` keeps the inputs for another
run. Peak memory is the largest
RSS of the programs (``getrusage(RUSAGE_CHILDREN)``) and of the Python job itself
(``RUSAGE_SELF``: DuckDB, Arrow), taken in a fresh subprocess per measurement started
from a small parent (inputs are made in another subprocess); ``steps`` splits each
program step's peak into anonymous and file-backed (memory-mapped) memory, from /proc.
One JSON line per measurement on stdout.
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

REPO = Path(__file__).resolve().parents[1]
AA = "ACDEFGHIKLMNPQRSTVWY"


def _sequences(n: int, path: str, seed: int = 1) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from foldatlas.fasta import sequence_checksum

    rng = np.random.default_rng(seed)
    seqs, residues = [], 0
    while len(seqs) < n:
        base = rng.integers(0, 20, int(np.clip(rng.lognormal(np.log(250), 0.5), 30, 1000)))
        for _ in range(5):
            v = base.copy()
            mut = rng.random(len(v)) < 0.1
            v[mut] = rng.integers(0, 20, int(mut.sum()))
            seqs.append("".join(AA[i] for i in v))
            residues += len(v)
    seqs = list(dict.fromkeys(seqs[:n]))
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs, "length": [len(s) for s in seqs]}), path)
    return residues


def _child(code: str, cgroup_mb: int | None = None) -> dict:
    """Run ``code`` in a fresh Python; return its JSON line plus wall time, peak RSS of its
    children, and each program step's peak anonymous and file-backed memory (``steps``).
    With ``cgroup_mb``, the child runs under that hard memory limit (bench/in_cgroup.sh,
    root and cgroup v1) and ``cgroup`` reports its peak, failcnt and OOM kills; a child
    that fails there is reported, not raised."""
    t = time.perf_counter()
    wrap = [str(REPO / "bench/in_cgroup.sh"), str(cgroup_mb)] if cgroup_mb else []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([*wrap, sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO)
        steps = _sample_steps(proc)
        out = proc.stdout.read()
        err.seek(0)
        report = [line.strip() for line in err if line.startswith("cgroup limit")]
    if proc.wait() != 0 and not cgroup_mb:
        raise subprocess.CalledProcessError(proc.returncode, "child")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    res = json.loads(lines[-1]) if lines else {"exit": proc.returncode}
    res["wall_s"] = round(time.perf_counter() - t, 2)
    res["steps"] = steps
    if report:
        res["cgroup"] = report[-1]
    return res


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                out += _tree(int(child))
    except OSError:
        pass
    return out


def _sample_steps(proc: subprocess.Popen) -> dict[str, dict[str, int]]:
    """Each mmseqs/foldseek step's peak (by its total) RSS, split into anonymous memory
    (``RssAnon``: what a job must hold) and file-backed pages (``RssFile``: memory-mapped
    databases, which the kernel can reclaim; ``getrusage`` counts both), in MiB, sampled
    every 0.05 s from /proc (a step shorter than that can be missed)."""
    peaks: dict[str, dict[str, int]] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid)[1:]:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
                status = {k: int(v.split()[0]) // 1024 for k, v in (line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()) if k in ("RssAnon", "RssFile")}
            except (OSError, ValueError):
                continue
            tool = Path(argv[0]).name.split("-")[0]  # Debian's mmseqs runs mmseqs-avx2 (or -sse*)
            if len(argv) < 2 or tool not in ("mmseqs", "foldseek"):
                continue
            step = f"{tool} {argv[1]}"
            if sum(status.values()) > sum(peaks.get(step, {}).values()):
                peaks[step] = {"anon": status.get("RssAnon", 0), "file": status.get("RssFile", 0)}
        time.sleep(0.05)
    return peaks


_PEAK = "import resource, json; peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024; self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024"


def _in_child(function: str, *args: object) -> None:
    """Run ``function(*args)`` of this script in a fresh Python, so this process stays
    small: Linux keeps a process's peak RSS across fork and exec, and every measuring
    child would otherwise report this one's peak."""
    subprocess.run([sys.executable, __file__, "--make", function, *map(str, args)], check=True, cwd=REPO)


def bench_mmseqs(n: int, tmp: Path, threads: int, max_mem_mb: int = 16000) -> dict:
    seqs = tmp / f"seqs{n}.parquet"
    _in_child("_sequences", n, str(seqs))
    code = f"""
from foldatlas.annotate import mmseqs_linclust
from foldatlas.settings import MmseqsSettings
from foldatlas.sizing import job_size, mem_mb
size = job_size("mmseqs_cluster", {str(seqs)!r})
ask = mem_mb("mmseqs_cluster", size, attempt=1, max_mem_mb={max_mem_mb}, kmer_per_seq=100)
rows = mmseqs_linclust("mmseqs", {str(seqs)!r}, {str(tmp / 'clu.parquet')!r}, settings=MmseqsSettings.from_config({{}}), threads={threads}, mem_mb=ask)
{_PEAK}
print(json.dumps({{"job": "mmseqs_cluster", "sequences": size.sequences, "residues": size.residues, "rows": rows, "asked_mb": ask, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""
    return _child(code)


def _shards(n: int, folder: str) -> None:
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("ideal", REPO / "tests/ideal.py")
    ideal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ideal)
    ideal_pdb = ideal.ideal_pdb

    from foldatlas.archive import ShardWriter

    rng = np.random.default_rng(2)
    writer = ShardWriter(folder, "highconf", 1000, archive_dir="structures")
    for k in range(n):
        writer.add(f"{k:032x}", {"pdb": ideal_pdb(int(rng.integers(60, 300))).encode()})
    writer.close()


def _place(a: "np.ndarray", b: "np.ndarray", c: "np.ndarray", bond: float, angle: float, torsion: "np.ndarray") -> "np.ndarray":
    """NeRF over a batch of chains: (B, 3) atoms d bonded to c, angle b-c-d, torsions (B,) in degrees."""
    import numpy as np

    bc = (c - b) / np.linalg.norm(c - b, axis=1, keepdims=True)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    ang, tor = np.radians(angle), np.radians(torsion)[:, None]
    return c - bond * np.cos(ang) * bc + bond * np.sin(ang) * (np.cos(tor) * np.cross(n, bc) + np.sin(tor) * n)


def _backbones(rng: "np.random.Generator", batch: int, length: int) -> "np.ndarray":
    """(batch, length, 4, 3) N, CA, C, O of chains with ideal bonds and angles whose
    torsions run in segments (mean length 12) of helix, strand, polyproline and random
    loop (each torsion +-10 degrees): varied folds, unlike the ideal helices, so foldseek's
    prefilter and clustering meet mostly unrelated structures, as in an atlas."""
    import numpy as np

    states = np.array([(-57.0, -47.0), (-120.0, 130.0), (-75.0, 145.0)])
    seg = np.cumsum(rng.random((batch, length)) < 1 / 12, axis=1)  # segments of mean length 12
    kind = np.take_along_axis(rng.integers(0, 4, (batch, length + 1)), seg, axis=1)
    loop = np.stack([rng.uniform(-160, -60, (batch, length)), rng.uniform(-60, 160, (batch, length))], axis=-1)
    tors = np.where((kind < 3)[..., None], states[np.minimum(kind, 2)], loop) + rng.normal(0, 10, (batch, length, 2))
    phi, psi = tors[..., 0], tors[..., 1]
    out = np.zeros((batch, length, 4, 3))
    N, CA, C = np.tile([-1.458, 0.0, 0.0], (batch, 1)), np.zeros((batch, 3)), np.tile([0.55, 1.42, 0.0], (batch, 1))
    for i in range(length):
        if i:
            N2 = _place(N, CA, C, 1.329, 116.2, psi[:, i - 1])
            CA2 = _place(CA, C, N2, 1.458, 121.7, np.full(batch, 180.0))
            C2 = _place(C, N2, CA2, 1.525, 111.2, phi[:, i])
            N, CA, C = N2, CA2, C2
        out[:, i, 0], out[:, i, 1], out[:, i, 2] = N, CA, C
        out[:, i, 3] = _place(N, CA, C, 1.231, 120.5, psi[:, i] + 180.0)
    return out


_ATOM = "ATOM  %5d %s %3s A%4d    %8.3f%8.3f%8.3f  1.00 80.00           %s  \n"
_BACKBONE = ((" N  ", "N"), (" CA ", "C"), (" C  ", "C"), (" O  ", "O"))


def _backbone_pdb(names: list[str], xyz: "np.ndarray") -> bytes:
    """PDB text of a backbone (L, 4, 3) with residue names ``names``, formatted in one
    ``%`` call (pdb_text formats atom by atom: 5 ms a chain, too slow for 10^5 chains)."""
    L = len(names)
    xyz = xyz.reshape(4 * L, 3).T.tolist()
    atoms, elements = [a for a, _ in _BACKBONE] * L, [e for _, e in _BACKBONE] * L
    res = [name for name in names for _ in range(4)]
    numbers = [r + 1 for r in range(L) for _ in range(4)]
    fields = [v for row in zip(range(1, 4 * L + 1), atoms, res, numbers, *xyz, elements) for v in row]
    return ((_ATOM * (4 * L)) % tuple(fields) + "END\n").encode()


def _varied_shards(n: int, folder: str) -> None:
    import numpy as np

    from foldatlas.archive import ShardWriter
    from foldatlas.structures import RESTYPES

    from Bio.SeqUtils import seq3

    three = [seq3(a).upper() for a in RESTYPES]
    rng = np.random.default_rng(3)
    writer = ShardWriter(folder, "highconf", 1000, archive_dir="structures")
    k = 0
    while k < n:
        batch = min(2000, n - k)
        chains = _backbones(rng, batch, 300).round(3)
        for j in range(batch):
            length = int(np.clip(rng.lognormal(np.log(180), 0.4), 60, 300))
            names = [three[i] for i in rng.integers(0, 20, length)]
            writer.add(f"{k:032x}", {"pdb": _backbone_pdb(names, chains[j, :length])})
            k += 1
    writer.close()


def bench_foldseek(n: int, tmp: Path, threads: int, varied: bool = False, cgroup_mb: int | None = None, shards: int = 1) -> list[dict]:
    structures = tmp / f"structures{n}"
    if not structures.exists():  # kept from an earlier run with --work
        _in_child("_varied_shards" if varied else "_shards", n, str(structures))
    db = tmp / f"db{n}"
    create = f"""
from foldatlas.annotate import bucket_db
from foldatlas.sizing import job_size
dbs = bucket_db("foldseek", {str(structures)!r}, {str(db)!r}, threads={threads})
size = job_size("foldseek_representatives", {str(db)!r})
{_PEAK}
print(json.dumps({{"job": "foldseek_createdb", "structures": size.sequences, "residues": size.residues, "shards": len(dbs), "tool_peak_mib": peak}}))
"""
    out = [_child(create)]
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = tmp / f"meta{n}.parquet"  # small: n rows
    pq.write_table(pa.table({"checksum": [f"{k:032x}" for k in range(n)], "plddt": [0.8] * n, "ptm": [0.8] * n,
                             "is_duplicate": [False] * n, "status": ["folded"] * n, "high_confidence": [True] * n}), meta)  # fmt: skip
    reps = tmp / f"reps{n}"
    select = f"""
from foldatlas.clustering import select_representatives
rows = select_representatives({str(db)!r}, {str(reps)!r}, metadata={str(meta)!r}, seq_clusters=None, threads={threads}, mem_mb=4000)
{_PEAK}
print(json.dumps({{"job": "foldseek_representatives", "structures": rows, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""
    out.append(_child(select))
    if shards > 1:
        return out + _bench_cascade(n, tmp, reps, threads, shards, cgroup_mb)
    cluster = f"""
from foldatlas.clustering import structural_clusters
from foldatlas.settings import FoldseekSettings
from foldatlas.sizing import job_size, mem_mb
size = job_size("foldseek_cluster", {str(reps)!r})
ask = mem_mb("foldseek_cluster", size, attempt=1, max_mem_mb={cgroup_mb or 16000}, kmer_per_seq=300)
rows = structural_clusters("foldseek", {str(reps)!r}, {str(tmp / f'fclu{n}.parquet')!r}, settings=FoldseekSettings.from_config({{}}), threads={threads}, mem_mb=ask)
{_PEAK}
print(json.dumps({{"job": "foldseek_cluster", "structures": size.sequences, "residues": size.residues, "rows": rows, "asked_mb": ask, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""
    out.append(_child(cluster, cgroup_mb))
    return out


def _bench_cascade(n: int, tmp: Path, reps: Path, threads: int, shards: int, cgroup_mb: int | None) -> list[dict]:
    """The cascade's jobs one by one (foldseek.cluster.shards), as the workflow runs them,
    each in a fresh child, sized as the rules size them; then the one-job clusters'
    equality with the cascade's when both were made."""
    from foldatlas.settings import FoldseekSettings

    rounds = FoldseekSettings.from_config({}).cluster.steps
    root = tmp / f"cascade{n}_{shards}"
    shutil.rmtree(root, ignore_errors=True)
    head = f"""
from pathlib import Path
from foldatlas.annotate import cluster_args
from foldatlas.cascade import cluster_linclust, cluster_round, search_shard
from foldatlas.clustering import representatives_db, structural_clusters
from foldatlas.settings import FoldseekSettings
from foldatlas.sizing import job_size, mem_mb, split_memory_limit
reps, root, settings = Path({str(reps)!r}), Path({str(root)!r}), FoldseekSettings.from_config({{}})
db = representatives_db(reps)
def ask(kind):
    return mem_mb(kind, job_size(kind, reps), attempt=1, max_mem_mb={cgroup_mb or 16000}, kmer_per_seq=300 if kind.endswith("linclust") else 0)
"""
    jobs = [("foldseek_cluster_linclust", """
m = ask("foldseek_cluster_linclust")
cluster_linclust("foldseek", db, root / "linclust", cluster_args=cluster_args(settings.cluster), rounds=settings.cluster.steps, threads=%d,
                 split=["--split-memory-limit", split_memory_limit(m)], scratch=root / "scratch")
""" % threads)]
    for r in range(rounds):
        previous = "root / 'linclust'" if r == 0 else f"root / 'round_{r - 1}' / 'clusters'"
        for k in range(shards):
            jobs.append((f"foldseek_cluster_search {r}/{k}", f"""
m = ask("foldseek_cluster_search")
search_shard("foldseek", db, {previous}, root / "round_{r}" / "search_{k}", linclust=root / "linclust", round_={r}, shard={k},
             shards={shards}, threads={threads}, split=split_memory_limit(m), scratch=root / "scratch")
"""))
        searches = [f"root / 'round_{r}' / 'search_{k}'" for k in range(shards)]
        jobs.append((f"foldseek_cluster_round {r}", f"""
m = ask("foldseek_cluster_round")
cluster_round("foldseek", db, {previous}, [{", ".join(searches)}], root / "round_{r}" / "clusters", linclust=root / "linclust",
              round_={r}, threads={threads})
"""))
    done = ", ".join(f"root / 'round_{r}' / 'clusters'" for r in range(rounds))
    jobs.append(("foldseek_cluster (merge)", f"""
m = ask("foldseek_cluster_round")
structural_clusters("foldseek", reps, root / "clusters.parquet", settings=settings, threads={threads}, mem_mb=m, cascade=(root / "linclust", [{done}]))
import pyarrow.parquet as pq
one = Path({str(tmp / f'fclu{n}.parquet')!r})
same = pq.read_table(one).equals(pq.read_table(root / "clusters.parquet")) if one.exists() else None
"""))
    out = []
    for name, code in jobs:
        res = _child(head + code + f"""
{_PEAK}
print(json.dumps({{"job": {name!r}, "asked_mb": m, "tool_peak_mib": peak, "python_peak_mib": self_peak, **({{"same_as_one_job": same}} if "same" in dir() else {{}})}}))
""", cgroup_mb)
        out.append(res)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, nargs="*", default=[20000, 200000])
    ap.add_argument("--structures", type=int, nargs="*", default=[300, 3000])
    ap.add_argument("--folds", choices=("helices", "varied"), default="helices",
                    help="structures: ideal helices (all align: cluster's worst case for time) or varied backbones (mostly unrelated, as in an atlas)")
    ap.add_argument("--cgroup-mb", type=int, help="foldseek_cluster capped at this request and run under it as a hard cgroup limit (root, cgroup v1)")
    ap.add_argument("--work", help="folder for inputs and outputs, kept (default: a temporary one); structure shards found there are reused")
    ap.add_argument("--shards", type=int, default=1, help="foldseek.cluster.shards: >1 runs the structural clustering's cascade job by job; its clusters are compared with those of an earlier one-job run in the same --work")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-mem-mb", type=int, default=16000, help="mmseqs.max_mem_mb: the cap of the request")
    ap.add_argument("--make", nargs=3, metavar=("WHAT", "N", "PATH"), help=argparse.SUPPRESS)  # inputs, in a child
    args = ap.parse_args()
    if args.make:
        {"_sequences": _sequences, "_shards": _shards, "_varied_shards": _varied_shards}[args.make[0]](int(args.make[1]), args.make[2])
        return
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as scratch:
        tmp = args.work or scratch
        for n in args.sequences:
            print(json.dumps(bench_mmseqs(n, Path(tmp), args.threads, args.max_mem_mb)), flush=True)
        if args.structures and shutil.which("foldseek") is None:
            print(json.dumps({"skipped": "foldseek not on PATH"}), flush=True)
            return
        for n in args.structures:
            for res in bench_foldseek(n, Path(tmp), args.threads, varied=args.folds == "varied", cgroup_mb=args.cgroup_mb, shards=args.shards):
                print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
