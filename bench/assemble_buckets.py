"""Assembling the atlas one checksum bucket a job (0.8), against one job for the whole atlas.

Since 0.8 the workflow assembles the atlas with one ``assemble_bucket`` job per checksum
bucket (``atlas.bucket_digits``: the structures, index, pLDDT and embeddings of the
bucket's predictions), one ``bucket_metadata`` job per bucket (its records joined with
their predictions and, for members, their representatives') and one light
``assemble_atlas`` job (``finish_atlas``: the summary, counted from the written tables).
This times, on one synthetic store (``bench/scale_jobs.py``'s: the real ``fold_chunk``
with a stand-in engine, published; ``--root`` takes a folder it kept), each job in its
own process under ``/usr/bin/time`` (wall time with Python's start, and peak RSS):

- the one call ``assemble_atlas`` (one bucket, ``all``: the work of 0.7's single job);
- with ``--digits`` (1: 16 buckets), every ``assemble_bucket``, every
  ``bucket_metadata`` and the finish, as the workflow runs them;
- the accounting and the report (0.10): ``check_accounting`` and ``write_report`` over
  the one-job atlas (one bucket: the work of 0.9's single jobs), and over the split atlas
  every ``check_bucket`` job (the accounting and the report's figures of its bucket) and
  the sum (``add_up_buckets``) and the report from the buckets' figures, as the workflow
  runs them (``--checks-only``: these alone, over the atlases a previous run left);

then checks that both atlases hold the same rows (each table sorted by its key).
``--copies`` (0.12) instead times every ``assemble_bucket`` job with and without
copies of the structures (``atlas.copy_structures``), with the bytes each leaves under
``atlas/structures``, and checks that both hold the same rows. ``--bins`` (0.13) then
times every ``repack_bins`` job (``atlas.bins``) over both of those atlases, reading the
copies or the fold archives, and checks that both give the same bin shards.

Usage: python bench/assemble_buckets.py --root /tmp/bench-scale-1000000-xxxx [--digits 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scale_jobs import REPO, job_config, spawn  # bench/, the script's folder


def _context(root: Path) -> dict:
    from foldatlas.layout import Layout
    from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings, fold_outputs_key, model_fingerprint

    config = job_config(root)
    layout = Layout.from_config(config["output"], config["store"])
    return {"config": config, "layout": layout, "store": layout.store(model_fingerprint(config)), "key": fold_outputs_key(config),
            "filter": FilterSettings.from_config(config["filter"]), "atlas": AtlasSettings.from_config(config["atlas"]),
            "structures": StructureSettings.from_config(config["structures"])}  # fmt: skip


def run_job(name: str, root: Path, bucket: str, out: str) -> None:
    """One job, in this process (the child ``spawn`` times)."""
    from foldatlas.atlas import assemble_atlas, assemble_bucket, bucket_metadata, finish_atlas
    from foldatlas.atomic import write_json
    from foldatlas.layout import Layout
    from foldatlas.store import atlas_sources, bucket_sources, release_history

    c = _context(root)
    if out.endswith("-refs"):  # an atlas without copies
        c["atlas"] = dataclasses.replace(c["atlas"], copy_structures=False)
    layout, atlas = c["layout"], Layout(root / out).atlas
    parts = root / out / "parts"
    if name == "whole":
        assemble_atlas(**atlas_sources(c["store"], layout.sequences, layout.release, scratch_dir=root / out / "scratch/sources"), records=layout.records,
                       sequences=layout.sequences, outputs=atlas, filter=c["filter"], atlas=c["atlas"], structures=c["structures"], config=c["config"],
                       threads=c["config"]["atlas"]["threads"], scratch_dir=root / out / "scratch/work", inputs=layout.inputs, outputs_key=c["key"])  # fmt: skip
    elif name == "assemble_bucket":
        part = assemble_bucket(bucket=bucket, **bucket_sources(c["store"], layout.sequences, bucket, root / out / "scratch" / bucket), outputs=atlas,
                               predictions=parts / f"{bucket}.predictions.parquet", filter=c["filter"], atlas=c["atlas"], structures=c["structures"],
                               threads=c["config"]["atlas"]["threads"], scratch_dir=root / out / "scratch" / f"{bucket}.work", outputs_key=c["key"])  # fmt: skip
        write_json(parts / f"{bucket}.json", part)
    elif name == "bucket_metadata":
        preds = {p.name.split(".")[0]: p for p in parts.glob("*.predictions.parquet")}
        bucket_metadata(bucket=bucket, records=layout.records, sequences=layout.sequences, inputs=layout.inputs, outputs=atlas, predictions=preds,
                        part=parts / f"{bucket}.json", atlas=c["atlas"], threads=c["config"]["atlas"]["threads"], scratch_dir=root / out / "scratch" / f"{bucket}.meta")  # fmt: skip
    elif name == "repack_bins":  # as scripts/repack_bins.py
        from foldatlas.bins import repack_bins

        repack_bins(bucket=bucket, index=atlas.part(atlas.index, bucket), predictions=parts / f"{bucket}.predictions.parquet", atlas_root=atlas.root,
                    out_dir=atlas.bin_shards(bucket), index_out=atlas.part(atlas.bins_index, bucket), shard_size=c["atlas"].shard_size,
                    scratch_dir=root / out / "scratch" / f"{bucket}.bins")  # fmt: skip
    elif name in ("check_whole", "check_bucket", "check_sum", "report_whole", "report"):
        _account(name, layout, atlas, bucket, parts)
    elif name == "finish":
        finish_atlas(atlas, parts={p.stem: p for p in parts.glob("*.json")}, records=layout.records, sequences=layout.sequences, inputs=layout.inputs,
                     filter=c["filter"], config=c["config"], releases=release_history(c["store"]), release=json.loads(layout.release.read_text())["release"])  # fmt: skip
    else:
        raise SystemExit(f"unknown job {name}")


def _account(name: str, layout, atlas, bucket: str, parts: Path) -> None:  # type: ignore[no-untyped-def]
    from foldatlas.accounting import add_up_buckets, check_accounting, check_bucket
    from foldatlas.atomic import write_json
    from foldatlas.report import bucket_figures, write_report

    ingest = {"records": layout.records, "sequences": layout.sequences, "outputs": atlas}
    reports = lambda: [json.loads(p.read_text()) for p in sorted(parts.glob("*.accounting.json"))]  # noqa: E731
    if name == "check_whole":
        check_accounting(**ingest, report=parts / "accounting.json", inputs=layout.inputs)
    elif name == "check_bucket":  # as scripts/check_bucket.py
        write_json(parts / f"{bucket}.accounting.json", {**check_bucket(bucket, **ingest), "figures": bucket_figures(bucket, atlas)})
    elif name == "check_sum":
        add_up_buckets(reports(), outputs=atlas, report=parts / "accounting.json", inputs=layout.inputs)
    elif name == "report_whole":
        write_report(metadata=atlas.metadata, summary=atlas.summary, out=parts / "report.html")
    else:
        write_report(metadata=atlas.metadata, summary=atlas.summary, out=parts / "report.html", figures=[r["figures"] for r in reports()])


def timed(name: str, root: Path, bucket: str, out: str) -> tuple[float, float]:
    wall, peak, rc = spawn([sys.executable, str(Path(__file__).resolve()), "--job", name, "--root", str(root), "--bucket", bucket, "--out", out], root / "time.txt")
    if rc != 0:
        raise SystemExit(f"{name} {bucket} failed (exit {rc})")
    print(f"[{time.strftime('%H:%M:%S')}] {name} {bucket}: {wall:.1f} s, {peak:.0f} MB", file=sys.stderr, flush=True)
    return wall, peak


def same_rows(root: Path, a: str, b: str, skip_metadata: bool = False) -> list[str]:
    """The tables of two atlases hold the same rows (archive paths aside: they name the bucket)."""
    import duckdb

    keys = {"metadata.parquet": ("source_index, record_index", "archive, member, rep_archive, rep_member"),
            "plddt.parquet": ("checksum", ""), "embeddings.parquet": ("checksum, layer", ""),
            "structures/index.parquet": ("collection, checksum", "archive, data_offset, cif_offset")}  # fmt: skip
    differ = []
    for table, (order, skip) in keys.items():
        if skip_metadata and table == "metadata.parquet":  # bucket_metadata's, not assemble_bucket's
            continue
        sql = lambda out: f"SELECT * {f'EXCLUDE ({skip})' if skip else ''} FROM '{root / out / 'atlas' / table}' ORDER BY {order}"  # noqa: E731
        if duckdb.sql(f"SELECT count(*) FROM (({sql(a)}) EXCEPT ALL ({sql(b)}))").fetchall()[0][0] or duckdb.sql(
            f"SELECT count(*) FROM (({sql(b)}) EXCEPT ALL ({sql(a)}))"
        ).fetchall()[0][0]:
            differ.append(table)
    return differ


def _row(job: str, r: list[tuple[float, float]]) -> None:
    w = sorted(x for x, _ in r)
    print(f"| {job} (x{len(r)}) | {w[-1]:.1f} / {w[len(w) // 2]:.1f} / {sum(w):.1f} | {max(p for _, p in r):,.0f} |")


def _assemble(root: Path, buckets: list[str]) -> None:
    """Both atlases, timed: the one job and the bucket jobs; then that they hold the same rows."""
    for out in ("bench-whole", "bench-buckets"):
        shutil.rmtree(root / out, ignore_errors=True)
        (root / out / "parts").mkdir(parents=True)
    whole = timed("whole", root, "all", "bench-whole")
    rows = {job: [timed(job, root, b, "bench-buckets") for b in buckets] for job in ("assemble_bucket", "bucket_metadata")}
    finish = timed("finish", root, "all", "bench-buckets")
    differ = same_rows(root, "bench-whole", "bench-buckets")
    print(f"{root}: {len(buckets)} buckets; tables that differ: {differ or 'none'}")
    print("| job | wall s: slowest / median / sum | peak MB: largest |")
    print("| --- | ---: | ---: |")
    print(f"| assemble_atlas in one job (0.7) | {whole[0]:.1f} | {whole[1]:,.0f} |")
    for job, r in rows.items():
        _row(job, r)
    print(f"| assemble_atlas (the finish) | {finish[0]:.1f} | {finish[1]:,.0f} |")


def _copies(root: Path, buckets: list[str]) -> None:
    """Every assemble_bucket job with copies and without (atlas.copy_structures), timed;
    the bytes under atlas/structures; then that both atlases hold the same rows."""
    rows = {}
    for out in ("bench-copies", "bench-refs"):
        shutil.rmtree(root / out, ignore_errors=True)
        (root / out / "parts").mkdir(parents=True)
        rows[out] = [timed("assemble_bucket", root, b, out) for b in buckets]
    differ = same_rows(root, "bench-copies", "bench-refs", skip_metadata=True)
    print(f"{root}: {len(buckets)} buckets; tables that differ: {differ or 'none'}")
    _sized_table(root, "assemble_bucket", "structures", rows, {"bench-copies": "copies (atlas.copy_structures: true)", "bench-refs": "no copies (false)"})


def _sized_table(root: Path, job: str, folder: str, rows: dict, names: dict[str, str]) -> None:
    """A Markdown table of each atlas's jobs: wall times, largest peak, bytes under ``atlas/<folder>``."""
    print(f"| {job} | wall s: slowest / median / sum | peak MB: largest | bytes under atlas/{folder} |")
    print("| --- | ---: | ---: | ---: |")
    for out, what in names.items():
        w = sorted(x for x, _ in rows[out])
        size = sum(f.stat().st_size for f in (root / out / "atlas" / folder).rglob("*") if f.is_file())
        print(f"| {what} | {w[-1]:.1f} / {w[len(w) // 2]:.1f} / {sum(w):.1f} | {max(p for _, p in rows[out]):,.0f} | {size:,} |")


def _bins(root: Path, buckets: list[str]) -> None:
    """Every repack_bins job (atlas.bins) over the atlas with copies and the one without
    (``--copies`` made them), timed; the bytes under atlas/bins; then that both bins
    indexes hold the same rows and both sets of bin shards the same bytes."""
    import duckdb

    rows = {out: [timed("repack_bins", root, b, out) for b in buckets] for out in ("bench-copies", "bench-refs")}
    index = lambda out: f"SELECT * FROM '{root / out / 'atlas/bins/index.parquet'}' ORDER BY checksum"  # noqa: E731
    differ = duckdb.sql(f"SELECT count(*) FROM (({index('bench-copies')}) EXCEPT ALL ({index('bench-refs')}))").fetchall()[0][0]
    shards = {out: sorted((root / out / "atlas/bins").glob("*/*.tar")) for out in rows}
    same = [a.relative_to(root / "bench-copies") == b.relative_to(root / "bench-refs") and a.read_bytes() == b.read_bytes() for a, b in zip(*shards.values())]
    n = duckdb.sql(f"SELECT count(*), count(DISTINCT collection) FROM '{root / 'bench-copies/atlas/bins/index.parquet'}'").fetchall()[0]
    print(f"{root}: {len(buckets)} buckets, {n[0]:,} structures in {n[1]} bins; index rows that differ: {differ}; "
          f"bin shards identical: {all(same) and len(shards['bench-copies']) == len(shards['bench-refs'])} ({len(same)})")  # fmt: skip
    _sized_table(root, "repack_bins, reading", "bins", rows, {"bench-copies": "the atlas's shards (copies)", "bench-refs": "the fold archives (no copies)"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="a folder bench/scale_jobs.py --keep --upto publish_release left")
    ap.add_argument("--digits", type=int, default=1, help="hex digits of the buckets (1: 16, 2: 256)")
    ap.add_argument("--checks-only", action="store_true", help="time the accounting and report jobs alone, over the atlases a previous run left")
    ap.add_argument("--copies", action="store_true", help="time assemble_bucket with and without copies of the structures (atlas.copy_structures)")
    ap.add_argument("--bins", action="store_true", help="time repack_bins (atlas.bins) over the atlases --copies left, reading copies and fold archives")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", default="all", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="bench-atlas", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        run_job(args.job, args.root, args.bucket, args.out)
        return
    from foldatlas.buckets import bucket_names

    buckets = bucket_names(args.digits)
    if args.copies:
        _copies(args.root, buckets)
        return
    if args.bins:
        _bins(args.root, buckets)
        return
    if not args.checks_only:
        _assemble(args.root, buckets)
    check_whole = timed("check_whole", args.root, "all", "bench-whole")
    report_whole = timed("report_whole", args.root, "all", "bench-whole")
    checks = [timed("check_bucket", args.root, b, "bench-buckets") for b in buckets]
    check_sum = timed("check_sum", args.root, "all", "bench-buckets")
    report = timed("report", args.root, "all", "bench-buckets")
    print("| job | wall s: slowest / median / sum | peak MB: largest |")
    print("| --- | ---: | ---: |")
    print(f"| check_accounting in one job (0.9's check) | {check_whole[0]:.1f} | {check_whole[1]:,.0f} |")
    print(f"| atlas_report over the atlas in one bucket | {report_whole[0]:.1f} | {report_whole[1]:,.0f} |")
    _row("check_bucket with the report's figures", checks)
    print(f"| check_accounting (the sum) | {check_sum[0]:.1f} | {check_sum[1]:,.0f} |")
    print(f"| atlas_report from the buckets' figures | {report[0]:.1f} | {report[1]:,.0f} |")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"(foldatlas at {commit}, with uncommitted changes if any)")


if __name__ == "__main__":
    main()
