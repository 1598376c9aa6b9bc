"""Every non-fold job's wall time and peak memory at sizes a decade apart (issue 17).

For each size N (records), in a temporary folder under /tmp:

1. writes ``--files`` gzipped FASTA inputs by streaming (60-column lines; lengths
   log-normal around 250 aa clipped to 20..1000 as in ``bench/store_release.py``;
   ``--dup`` of the records, 20% by default, repeat an earlier record's sequence);
2. runs the workflow's jobs in its order, each in a fresh Python process (this script
   with ``--job``) calling the library functions its entry script (``scripts/*.py``)
   calls, with the arguments its rule passes and the default configuration
   (``config/config.yaml``; ``input.fasta`` and ``output.root`` set to the temporary
   folder): ``read_fasta`` (one job per file), ``plan_chunks``, the fold jobs,
   ``publish_release``, ``assemble_atlas``, ``check_accounting``, ``atlas_report``.
   Wall time is the process's, Python start and imports included (as a Snakemake
   ``script:`` job's); peak memory is its maximum RSS as ``/usr/bin/time`` reports it.
3. fits, per job, the part that grows as a power of N (least squares of the logs over
   the sizes run) and extrapolates to 10^8 and 10^9 records, against the issue's bounds
   (2 h, 16 GB per job but a fold job). A raw fit of the process's wall and peak RSS
   would be flattened by the fixed start (0.5-1 s and 100-300 MB of Python and imports,
   most of a small job), so each job also records its library call's own time and its
   peak RSS when the call began: wall = start + a N^b (b: the call time's exponent),
   memory = start + c N^d (d: the exponent of the peak above the start).

The fold jobs are replaced by a stand-in engine (as in ``bench/assemble_vs_tar.py``):
the real ``fold_chunk`` (writer thread, segments, merge) runs over every planned chunk,
all chunks in one process, with an engine that returns made-up predictions (no model).
To keep 10^6 records within this machine's disk and time, two things are smaller than
in a real run, and the output says so under the table:

- structures (``--atoms ca``, default): each structure's PDB holds its C-alpha atoms
  only (``--atoms full``: every atom of the residue type, as ESMFold writes them: about
  6x the store's bytes, 51 KB per sequence against 9 KB), and the gzip member is made once per length bin of 10 residues and
  reused under each sequence's member name (the tar header is written per structure).
  The archive format, member names and byte ranges are real; the bytes per structure
  are a fraction of a real one's, so the byte-bound parts of ``publish_release``
  (SHA-256 of every new file) and ``assemble_atlas`` (copy and CRC check) are too;
- embeddings: width 64 (``--dim``) instead of ESMFold's 2560 (the last layer of its
  language model, ESM-2 3B), float16: 128 B per sequence instead of 5 KB.

The fold stand-in's host time is reported apart: it is not a job the issue bounds (a
fold job's size is set by ``chunks.gpu_seconds``, not by the release).

With ``--ingest-digits D`` (``ingest.bucket_digits``), ``read_fasta`` writes a part per
checksum bucket, one ``plan_bucket`` job plans each of the 16^D buckets (the largest is
what a job must fit), and ``plan_chunks`` only numbers their chunks and joins their
tables. A bucket job at N records with D digits does what one at 16^(2-D) x N records
does with 2 digits (256 buckets, as at 10^9).

Usage: python bench/scale_jobs.py [--sizes 10000 100000 1000000] [--out result.json]
       python bench/scale_jobs.py --ingest-digits 1 --upto plan_chunks --out buckets.json
       python bench/scale_jobs.py --sizes 10000000 --upto plan_chunks --out 1e7.json
       python bench/scale_jobs.py --from-json result.json 1e7.json   (the table of both)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AA = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
JOBS = ["read_fasta", "plan_chunks", "fold (stand-in)", "publish_release", "assemble_atlas", "check_accounting", "atlas_report"]
BOUND_S, BOUND_MB = 2 * 3600, 16_000


# ---------------------------------------------------------------- synthetic input


def write_inputs(folder: Path, n: int, files: int, dup: float, seed: int = 0) -> list[Path]:
    """``files`` gzipped FASTA files holding ``n`` records between them, written as they
    are generated; a ``dup`` share of the records repeat an earlier record's sequence."""
    rng = np.random.default_rng(seed)
    seen: list[bytes] = []
    paths = [folder / f"input_{k}.fasta.gz" for k in range(files)]
    per_file = [n // files + (k < n % files) for k in range(files)]
    block = 50_000
    record = 0
    for path, count in zip(paths, per_file):
        with gzip.open(path, "wb", compresslevel=1) as fh:
            done = 0
            while done < count:
                m = min(block, count - done)
                lengths = np.clip(rng.lognormal(np.log(250), 0.5, m).astype(int), 20, 1000)
                pool = rng.choice(AA, size=int(lengths.sum()))
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                repeat = rng.random(m) < dup
                picks = rng.random(m)
                out = []
                for k in range(m):
                    if repeat[k] and seen:
                        seq = seen[int(picks[k] * len(seen))]
                    else:
                        seq = pool[offsets[k] : offsets[k + 1]].tobytes()
                        seen.append(seq)
                    lines = b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
                    out.append(b">r%012d synthetic record\n%s\n" % (record, lines))
                    record += 1
                fh.write(b"".join(out))
                done += m
    return paths


# ---------------------------------------------------------------- the jobs (children)


def job_config(root: Path) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["input"]["fasta"] = sorted(str(p) for p in root.glob("input_*.fasta.gz"))
    config["output"]["root"] = str(root / "results")
    if (root / "chunk_digits.txt").exists():  # --chunk-digits
        config["chunks"]["bucket_digits"] = int((root / "chunk_digits.txt").read_text())
    if (root / "ingest_digits.txt").exists():  # --ingest-digits
        config["ingest"]["bucket_digits"] = int((root / "ingest_digits.txt").read_text())
    return config


def fast_structures(atoms: str, dim: int):  # type: ignore[no-untyped-def]
    """A stand-in for ``archive.structure_entries`` (see the module docstring): the gzip
    member of one made-up structure per 10-residue length bin, under the sequence's own
    member name."""
    import tarfile

    from transformers.models.esm.openfold_utils.residue_constants import restype_atom37_mask

    from foldatlas.archive import ARCHIVE_MTIME, BLOCK
    from foldatlas.structures import member_name, pdb_text

    mask37 = np.asarray(restype_atom37_mask, dtype=bool)
    rng = np.random.default_rng(1)
    cache: dict[int, bytes] = {}

    def member(length: int) -> bytes:
        L = max(20, int(round(length / 10)) * 10)
        if L not in cache:
            aatype = rng.integers(0, 20, L).astype(np.int16)
            steps = rng.normal(size=(L, 3))
            steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
            positions = (np.cumsum(steps, axis=0)[:, None, :] + rng.normal(scale=1.5, size=(L, 37, 3))).astype(np.float32)
            mask = mask37[aatype].copy()
            if atoms == "ca":
                mask[:, :] = False
                mask[:, 1] = True
            plddt = np.clip(rng.normal(0.8, 0.08, size=(L, 37)), 0, 1).astype(np.float32)
            remarks = ["foldatlas model bench-stand-in (none)", f"checksum {'0' * 32} length {L}", "pLDDT 0.8000 pTM 0.8000 (0-1)"]
            cache[L] = gzip.compress(pdb_text(aatype, positions, mask, plddt, remarks=remarks).encode("ascii"), compresslevel=6, mtime=ARCHIVE_MTIME)
        return cache[L]

    def structure_entries(p, *, formats=("pdb",), remarks=None, context=None) -> bytes:  # type: ignore[no-untyped-def]
        comp = member(p.length)
        info = tarfile.TarInfo(member_name(p.checksum, "pdb"))
        info.size, info.mtime, info.mode = len(comp), ARCHIVE_MTIME, 0o644
        return info.tobuf(format=tarfile.USTAR_FORMAT) + comp + b"\0" * (-len(comp) % BLOCK)

    return structure_entries


def stand_in_engine(dim: int):  # type: ignore[no-untyped-def]
    """``bench/assemble_vs_tar.py``'s stand-in engine (what ``fold_chunk`` needs of a
    FoldEngine), with ``predict`` making up confidences (about half pass the default
    filter, as there) instead of looking them up; imported only by the fold job."""
    from assemble_vs_tar import StandInEngine

    from foldatlas.prediction import Prediction

    class MadeUp(StandInEngine):
        def __init__(self) -> None:
            super().__init__({}, dim)
            self.rng = np.random.default_rng(2)

        def predict(self, items):  # type: ignore[no-untyped-def]
            out = []
            for it in items:
                level = self.rng.uniform(0.5, 0.95)
                res = np.clip(self.rng.normal(level, 0.08, size=it.length), 0, 1).astype(np.float32)
                out.append(Prediction(
                    checksum=it.checksum, length=it.length, plddt=float(res.mean()), plddt_ca=float(res.mean()),
                    ptm=float(np.clip(level + self.rng.normal(0, 0.05), 0, 1)), num_conf=int((res > 0.7).sum()),
                    max_pae=20.0, mean_pae=8.0, batch_size=len(items), residue_plddt=res,
                    embeddings={self.embedding_dim: self.rng.normal(size=self.embedding_dim).astype(np.float32)},
                ))  # fmt: skip
            return out

        def close(self) -> None:
            pass

    return MadeUp()


def run_job(name: str, root: Path, source: int, atoms: str, dim: int) -> dict:
    """One job, as its entry script runs it with its rule's arguments. Besides what the
    parent measures, records the library call's own time (``work_s``) and the process's
    peak RSS when the call began (``base_mb``: Python, the job's imports, its inputs'
    paths), so that the fit can separate the start-up from what grows."""
    import resource
    from foldatlas.layout import Layout, RELEASE_FILE
    from foldatlas.settings import IngestSettings, fold_outputs_key, model_fingerprint

    config = job_config(root)
    layout = Layout.from_config(config["output"], config["store"])
    key = fold_outputs_key(config)
    store = layout.store(model_fingerprint(config))
    info: dict = {}

    def timed(call):  # type: ignore[no-untyped-def]
        info["base_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)
        t = time.perf_counter()
        out = call()
        info["work_s"] = round(time.perf_counter() - t, 3)
        return out

    ingest = IngestSettings.from_config(config["ingest"])
    part = layout.ingest_bucket_parts if ingest.bucket_digits else layout.ingest_part
    if name == "read_fasta":
        from foldatlas.ingest import read_fasta_file

        path = config["input"]["fasta"][source]
        counts = timed(lambda: read_fasta_file(path, part(str(source)), source=path, source_index=source, settings=ingest,
                                               workers=config["ingest"]["threads"], count_out=layout.ingest_count(str(source)),
                                               digits=ingest.bucket_digits))  # fmt: skip
        info["records"] = sum(counts.values())
    elif name == "plan_bucket":  # --ingest-digits: one job per checksum bucket
        from foldatlas.bucket_plans import plan_bucket
        from foldatlas.buckets import bucket_names
        from foldatlas.settings import ChunkSettings

        bucket, n = bucket_names(ingest.bucket_digits)[source], len(config["input"]["fasta"])
        plans = timed(lambda: plan_bucket(
            bucket, [part(str(k)) for k in range(n)], store=store, release=config["store"]["release"], outputs_key=key,
            out=layout.planned_bucket(bucket), settings=ChunkSettings.from_config(config["chunks"]), ingest_digits=ingest.bucket_digits,
            memory_gb=ingest.memory_gb, threads=config["ingest"]["threads"], scratch_dir=layout.scratch(f"plan_bucket/{bucket}"),
        ))  # fmt: skip
        info.update(chunks=len(plans), unique=sum(p.n_sequences for p in plans))
    elif name == "plan_chunks" and ingest.bucket_digits:  # numbers the buckets' chunks, joins their tables
        from foldatlas.bucket_plans import number_bucket_plans
        from foldatlas.buckets import bucket_names

        n = len(config["input"]["fasta"])
        plans = timed(lambda: number_bucket_plans(
            [layout.planned_bucket(b) for b in bucket_names(ingest.bucket_digits)], store=store, release=config["store"]["release"],
            outputs_key=key, counts=[layout.ingest_count(str(k)) for k in range(n)], records_out=layout.records,
            sequences_out=layout.sequences, chunks_dir=layout.chunks, inputs_out=layout.inputs,
        ))  # fmt: skip
        info.update(chunks=len(plans), unique=sum(p.n_sequences for p in plans))
    elif name == "plan_chunks":
        from foldatlas.chunking import plan_release_chunks
        from foldatlas.settings import ChunkSettings

        n = len(config["input"]["fasta"])
        plans = timed(lambda: plan_release_chunks(
            [layout.ingest_part(str(k)) for k in range(n)], store=store, release=config["store"]["release"],
            redundancy=IngestSettings.from_config(config["ingest"]).redundancy, mmseqs=config["mmseqs"]["binary"], outputs_key=key,
            records_out=layout.records, sequences_out=layout.sequences, chunks_dir=layout.chunks,
            settings=ChunkSettings.from_config(config["chunks"]), memory_gb=IngestSettings.from_config(config["ingest"]).memory_gb,
            threads=config["ingest"]["threads"], scratch_dir=layout.scratch("plan_chunks"),
            counts=[layout.ingest_count(str(k)) for k in range(n)], inputs_out=layout.inputs,
        ))  # fmt: skip
        info.update(chunks=len(plans), unique=sum(p.n_sequences for p in plans))
    elif name == "fold (stand-in)":
        import foldatlas.fold as fold_module
        from foldatlas.chunking import read_plan
        from foldatlas.store import check_unpublished

        fold_module.structure_entries = fast_structures(atoms, dim)  # type: ignore[assignment]
        engine = stand_in_engine(dim)
        fold = config["fold"]
        per_chunk: list[float] = []

        def fold_all() -> None:
            for plan in read_plan(layout.plan):
                check_unpublished(store, plan.id)
                t = time.perf_counter()
                fold_module.fold_chunk(layout.chunk_file(plan.id), store.chunk_outputs(plan.id), layout.partial(plan.id), engine,  # type: ignore[arg-type]
                                       commit_seconds=fold["commit_seconds"], progress_seconds=fold["progress_seconds"],
                                       formats=tuple(config["structures"]["formats"]), outputs_key=key)  # fmt: skip
                per_chunk.append(time.perf_counter() - t)

        timed(fold_all)
        info.update(chunks=len(per_chunk), max_chunk_s=round(max(per_chunk), 2), mean_chunk_s=round(sum(per_chunk) / len(per_chunk), 2))
    elif name == "publish_release":
        from foldatlas.store import publish_release

        timed(lambda: publish_release(store, planned=f"{layout.chunks}/{RELEASE_FILE}", sequences=layout.sequences, inputs=layout.inputs, receipt=layout.release))
    elif name == "assemble_atlas":
        from foldatlas.atlas import assemble_atlas
        from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings
        from foldatlas.store import atlas_sources

        out_layout = Layout.from_config(config["output"])
        summary = timed(lambda: assemble_atlas(
            **atlas_sources(store, layout.sequences, layout.release, scratch_dir=out_layout.scratch("release_chunks")), records=layout.records, sequences=layout.sequences,
            outputs=out_layout.atlas, filter=FilterSettings.from_config(config["filter"]), atlas=AtlasSettings.from_config(config["atlas"]),
            structures=StructureSettings.from_config(config["structures"]), config=config, threads=config["atlas"]["threads"],
            scratch_dir=out_layout.scratch("assemble_atlas"), inputs=layout.inputs, outputs_key=key,
        ))  # fmt: skip
        info["counts"] = summary.get("counts", {})
    elif name == "check_accounting":
        from foldatlas.accounting import check_accounting

        out_layout = Layout.from_config(config["output"])
        timed(lambda: check_accounting(records=layout.records, sequences=layout.sequences, outputs=out_layout.atlas, report=layout.accounting, inputs=layout.inputs))
    elif name == "atlas_report":
        from foldatlas.report import write_report

        a = layout.atlas
        timed(lambda: write_report(metadata=a.metadata, summary=a.summary, config=a.config, out=layout.report))
    else:
        raise SystemExit(f"unknown job {name}")
    return info


# ---------------------------------------------------------------- the parent


def spawn(argv: list[str], stats: Path) -> tuple[float, float, int]:
    """Run ``argv`` under ``/usr/bin/time``; return (wall seconds, peak RSS in MB of that
    process, exit code). Not ``os.wait4`` on a child of this process: Linux carries the
    parent's RSS high-water mark over the child's ``execve`` into its ``ru_maxrss``, so a
    child of a large parent would report at least the parent's size; ``time`` is small."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "scripts")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    t = time.perf_counter()
    rc = subprocess.run(["/usr/bin/time", "-o", str(stats), "-f", "%e %M", *argv], env=env).returncode
    wall = time.perf_counter() - t
    _, max_kb = stats.read_text().split()[-2:]
    return wall, int(max_kb) * 1024 / 1e6, rc


def du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def run_size(n: int, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-", dir="/tmp"))
    result: dict = {"records": n, "jobs": {}}
    try:
        t = time.perf_counter()  # by a child: this process stays small (see spawn)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--job", "write_inputs", "--root", str(tmp), "--source", str(n),
                        "--files", str(args.files), "--dup", str(args.dup)], check=True)  # fmt: skip
        inputs = sorted(tmp.glob("input_*.fasta.gz"))
        if args.chunk_digits is not None:
            (tmp / "chunk_digits.txt").write_text(str(args.chunk_digits))
        if args.ingest_digits:
            (tmp / "ingest_digits.txt").write_text(str(args.ingest_digits))
        result["write_inputs_s"] = round(time.perf_counter() - t, 1)
        result["input_gb"] = round(sum(p.stat().st_size for p in inputs) / 1e9, 3)
        steps = [("read_fasta", k) for k in range(len(inputs))] + [("plan_bucket", k) for k in range(16**args.ingest_digits if args.ingest_digits else 0)]
        steps += [(j, 0) for j in JOBS[1:]]
        if args.upto:  # the jobs up to this one only (a larger size for the table jobs alone)
            steps = steps[: max(i for i, (j, _) in enumerate(steps) if j == args.upto) + 1]
        for name, source in steps:
            info_file = tmp / "job.json"
            argv = [sys.executable, str(Path(__file__).resolve()), "--job", name, "--root", str(tmp), "--source", str(source),
                    "--atoms", args.atoms, "--dim", str(args.dim), "--info", str(info_file)]  # fmt: skip
            wall, peak, rc = spawn(argv, tmp / "time.txt")
            if rc != 0:
                raise SystemExit(f"{name} failed at {n} records (exit {rc}); folder kept: {tmp}")
            info = json.loads(info_file.read_text())
            label = {"read_fasta": "read_fasta (per file)", "plan_bucket": "plan_bucket (per bucket)"}.get(name, name)
            if name == "plan_chunks" and args.ingest_digits:
                label = "plan_chunks (numbers the buckets' chunks)"
            row = result["jobs"].setdefault(label, {"wall_s": 0.0, "peak_mb": 0.0, "work_s": 0.0, "base_mb": 0.0, "runs": []})
            row["runs"].append({"wall_s": round(wall, 2), "peak_mb": round(peak, 1), **info})
            # a job per file: the largest of them is what a job must fit
            row["wall_s"] = round(max(row["wall_s"], wall), 2)
            row["peak_mb"] = round(max(row["peak_mb"], peak), 1)
            row["work_s"] = round(max(row["work_s"], info["work_s"]), 3)
            row["base_mb"] = round(max(row["base_mb"], info["base_mb"]), 1)
            print(f"[{time.strftime('%H:%M:%S')}] N={n:,} {label}: {wall:.1f} s, {peak:.0f} MB {info}", file=sys.stderr, flush=True)
        results = tmp / "results"
        result["disk_gb"] = {"store": round(du(results / "store"), 2), "atlas": round(du(results / "atlas"), 2), "total": round(du(tmp), 2)}
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def fit(ns: list[int], ys: list[float]) -> tuple[float, float]:
    """Least squares of log(y) = a + b log(n); returns (b, a)."""
    x, y = np.log(np.array(ns, float)), np.log(np.maximum(np.array(ys, float), 1e-9))
    b, a = np.polyfit(x, y, 1)
    return float(b), float(a)


def fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} d"


def fmt_mb(mb: float) -> str:
    return f"{mb:,.0f} MB" if mb < 10_000 else f"{mb / 1000:,.0f} GB"


def extrapolate(results: list[dict], job: str, n: float, last: int = 0) -> tuple[float, float, float, float]:
    """(wall s, peak MB, exponent of the work time, exponent of the memory above the
    start) at ``n`` records: start-up (process wall less the library call; peak RSS when
    the call began), averaged over the sizes, plus the part that grows, fitted as a power
    of the records (least squares in log-log); ``last``: fit over the last sizes only."""
    results = [r for r in results if job in r["jobs"]]
    results = results[-last:] if last else results
    ns = [r["records"] for r in results]
    rows = [r["jobs"][job] for r in results]
    start_s = float(np.mean([x["wall_s"] - x["work_s"] for x in rows]))
    base_mb = float(np.mean([x["base_mb"] for x in rows]))
    bw, aw = fit(ns, [max(x["work_s"], 1e-3) for x in rows])
    bm, am = fit(ns, [max(x["peak_mb"] - x["base_mb"], 1.0) for x in rows])
    return start_s + math.exp(aw + bw * math.log(n)), base_mb + math.exp(am + bm * math.log(n)), bw, bm


def table(results: list[dict]) -> str:
    ns = [r["records"] for r in results]
    head = ["job"] + [f"wall s {n:.0e}".replace("e+0", "e") for n in ns] + [f"peak MB {n:.0e}".replace("e+0", "e") for n in ns]
    head += ["exponent: call time / memory above start", "at 1e8: wall / mem", "at 1e9: wall / mem", "over 2 h / 16 GB at 1e9?"]
    head += ["last decade only: exponents", "at 1e9", "over?"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    jobs = max((list(r["jobs"]) for r in results), key=len)
    for job in jobs:
        have = [r for r in results if job in r["jobs"]]
        cells = [job] + [f"{r['jobs'][job]['wall_s']:.1f}" if job in r["jobs"] else "-" for r in results]
        cells += [f"{r['jobs'][job]['peak_mb']:,.0f}" if job in r["jobs"] else "-" for r in results]
        if len(have) >= 2:
            w8, m8, _, _ = extrapolate(results, job, 1e8)
            w9, m9, bw, bm = extrapolate(results, job, 1e9)
            over = ("**yes**" if w9 > BOUND_S else "no") + " / " + ("**yes**" if m9 > BOUND_MB else "no")
            if job.startswith("fold"):
                over = "(not bounded: " + over + " for all chunks in one process)"
            cells += [f"{bw:.2f} / {bm:.2f}", f"{fmt_s(w8)} / {fmt_mb(m8)}", f"{fmt_s(w9)} / {fmt_mb(m9)}", over]
            if len(have) >= 3:
                w9l, m9l, bwl, bml = extrapolate(results, job, 1e9, last=2)
                overl = ("**yes**" if w9l > BOUND_S else "no") + " / " + ("**yes**" if m9l > BOUND_MB else "no")
                cells += [f"{bwl:.2f} / {bml:.2f}", f"{fmt_s(w9l)} / {fmt_mb(m9l)}", "(fold: not bounded)" if job.startswith("fold") else overl]
            else:
                cells += ["-"] * 3
        else:
            cells += ["-"] * 7
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def note(atoms: str, dim: int) -> str:
    return (f"Stand-in fold outputs: {'C-alpha-only' if atoms == 'ca' else 'all-atom'} PDBs"
            + (" (about a sixth of a real structure's bytes: the byte-bound parts of publish_release and assemble_atlas are smaller"
               " than in a real run; --atoms full measures them)" if atoms == "ca" else "")
            + f"; embeddings {dim} wide (ESMFold's are 2560: 5 KB per sequence in float16, {2560 * 2 - dim * 2:,} B more per sequence"
            " for publish_release to checksum and assemble_atlas to copy). Fold rows: host work of all chunks in one process, not a bounded job.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--files", type=int, default=4, help="input FASTA files (one read_fasta job each)")
    ap.add_argument("--dup", type=float, default=0.2, help="share of records repeating an earlier sequence")
    ap.add_argument("--atoms", choices=["ca", "full"], default="ca", help="atoms per residue in the stand-in PDBs")
    ap.add_argument("--dim", type=int, default=64, help="embedding width of the stand-in")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--chunk-digits", type=int, default=None, help="chunks.bucket_digits (default: the configuration's, auto)")
    ap.add_argument("--ingest-digits", type=int, default=0, help="ingest.bucket_digits: plan in 16 or 256 plan_bucket jobs (default 0: one plan_chunks job)")
    ap.add_argument("--upto", choices=JOBS, default=None, help="run the jobs up to this one only (e.g. plan_chunks: the ingest jobs at a size whose structures would not fit)")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--source", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--info", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--from-json", type=Path, nargs="+", help="print the table of earlier --out files (one size each or more)")
    args = ap.parse_args()
    if args.job == "write_inputs":
        write_inputs(args.root, args.source, args.files, args.dup)
        return
    if args.job:
        args.info.write_text(json.dumps(run_job(args.job, args.root, args.source, args.atoms, args.dim)))
        return
    if args.from_json:
        results = sorted((r for p in args.from_json for r in json.loads(p.read_text())["sizes"]), key=lambda r: r["records"])
        print(table(results))
        return
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = []
    for n in args.sizes:
        t = time.perf_counter()
        results.append(run_size(n, args))
        results[-1]["size_total_s"] = round(time.perf_counter() - t, 1)
        results[-1]["upto"] = args.upto
        out = {"commit": commit, "atoms": args.atoms, "dim": args.dim, "files": args.files, "dup": args.dup, "sizes": results}
        if args.out:
            args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print()
    print(table(results))
    print()
    print(note(args.atoms, args.dim))


if __name__ == "__main__":
    main()
