"""foldseek_createdb and foldseek_search one checksum bucket a job (foldatlas 0.9) against
one job over the whole atlas (0.8): wall time and peak memory of each job.

    PATH=/opt/foldseek-local/bin:$PATH python bench/annotate_buckets.py --structures 1600 16000

Structures: ideal helices of 60-300 residues (tests/ideal.py) under random checksums, in
1000-member shards of 16 bucket folders (``atlas/structures/<bucket>/``, as
``assemble_bucket`` writes them). The search target: 300 other helices, made a
foldseek database once (``foldseek_target_db``). Each job runs in a fresh subprocess
(peak RSS of the programs: ``RUSAGE_CHILDREN``; of the Python job: ``RUSAGE_SELF``). The
one-job figures are what 0.8's single ``foldseek_createdb`` and ``foldseek_search`` did:
the same calls over every bucket in one process. One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from annotate_sizes import _PEAK, REPO, _child  # bench/, the script's folder

BUCKETS = [f"{b:x}" for b in range(16)]


def _bucket_shards(n: int, folder: str) -> None:
    """``n`` helices under random checksums, each in its checksum's bucket folder."""
    import hashlib
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("ideal", REPO / "tests/ideal.py")
    ideal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ideal)

    from foldatlas.archive import ShardWriter

    rng = np.random.default_rng(3)
    writers = {b: ShardWriter(Path(folder) / b, "highconf", 1000, archive_dir=f"structures/{b}") for b in BUCKETS}
    for k in range(n):
        checksum = hashlib.md5(f"bench-{k}".encode()).hexdigest()
        writers[checksum[0]].add(checksum, {"pdb": ideal.ideal_pdb(int(rng.integers(60, 300))).encode()})
    for w in writers.values():
        w.close()


def _make(function: str, n: int, path: Path) -> None:
    subprocess.run([sys.executable, __file__, "--make", function, str(n), str(path)], check=True, cwd=REPO)


def _createdb(structures: list[Path], dbs: list[Path], threads: int) -> dict:
    code = f"""
from foldatlas.annotate import bucket_db
from foldatlas.sizing import job_size
for s, d in zip({[str(s) for s in structures]!r}, {[str(d) for d in dbs]!r}):
    bucket_db("foldseek", s, d, threads={threads})
size = job_size("foldseek_cluster", {[str(d) for d in dbs]!r})
{_PEAK}
print(json.dumps({{"structures": size.sequences, "residues": size.residues, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""
    return _child(code)


def _search(dbs: list[Path], target: Path, out: Path, threads: int) -> dict:
    code = f"""
from foldatlas.annotate import foldseek_search
from foldatlas.settings import FoldseekSettings
search = FoldseekSettings.from_config({{"search": {{"targets": [{str(target)!r}]}}}}).search
hits = foldseek_search("foldseek", {[str(d) for d in dbs]!r}, {str(out)!r}, search=search, threads={threads}, mem_mb=4000)
{_PEAK}
print(json.dumps({{"hits": hits, "tool_peak_mib": peak, "python_peak_mib": self_peak}}))
"""
    return _child(code)


def bench(n: int, tmp: Path, threads: int) -> list[dict]:
    structures, target = tmp / f"structures{n}", tmp / "target"
    _make("_bucket_shards", n, structures)
    if not target.exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("annotate_sizes.py")), "--make", "_shards", "300", str(target / "shards")], check=True, cwd=REPO)
        _child(f"from foldatlas.annotate import target_db\ntarget_db('foldseek', {str(target / 'shards')!r}, {str(target / 'db')!r}, threads={threads})\nprint('{{}}')")
    tdb = target / "db" / "db"
    folders = [structures / b for b in BUCKETS]
    one_db = [tmp / f"one{n}" / b for b in BUCKETS]
    out = [{"n": n, "job": "foldseek_createdb", "as": "one job (0.8)", **_createdb(folders, one_db, threads)}]
    per = [_createdb([f], [tmp / f"db{n}" / f.name], threads) for f in folders]
    out.append(_summary(n, "foldseek_createdb", per))
    out.append({"n": n, "job": "foldseek_search", "as": "one job (0.8)", **_search(one_db, tdb, tmp / f"hits{n}" / "one.parquet", threads)})
    per = [_search([tmp / f"db{n}" / b], tdb, tmp / f"hits{n}" / f"{b}.parquet", threads) for b in BUCKETS]
    out.append(_summary(n, "foldseek_search", per))
    return out


def _summary(n: int, job: str, per: list[dict]) -> dict:
    walls = [p["wall_s"] for p in per]
    return {"n": n, "job": job, "as": "16 bucket jobs", "slowest_s": max(walls), "median_s": statistics.median(walls), "sum_s": round(sum(walls), 2),
            "tool_peak_mib": max(p["tool_peak_mib"] for p in per), "python_peak_mib": max(p["python_peak_mib"] for p in per),
            **({"hits": sum(p["hits"] for p in per)} if "hits" in per[0] else {"structures": sum(p["structures"] for p in per)})}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", type=int, nargs="*", default=[1600, 16000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--make", nargs=3, metavar=("WHAT", "N", "PATH"), help=argparse.SUPPRESS)  # inputs, in a child
    args = ap.parse_args()
    if args.make:
        {"_bucket_shards": _bucket_shards}[args.make[0]](int(args.make[1]), args.make[2])
        return
    if shutil.which("foldseek") is None:
        print(json.dumps({"skipped": "foldseek not on PATH"}), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-annotate-buckets-") as tmp:
        for n in args.structures:
            for res in bench(n, Path(tmp), args.threads):
                print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
