"""What runs again: content and the settings that change outputs decide, not time stamps
(profiles/default/config.yaml, the params of fold_chunk, every product a target).

One demo run, then dry runs (`-n`) under changed configs, then real runs after an input
is touched, added and removed, each checked against the jobs it ran and the plan.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from foldatlas.chunking import read_plan
from foldatlas.settings import FoldSettings
from test_workflow import prepare, run

pytestmark = pytest.mark.workflow


def snakemake(wd: Path, config: dict, *args: str, fails: bool = False) -> tuple[Counter[str], str]:
    """Run the workflow in ``wd`` with ``config``; the jobs it ran (or would run) by rule.

    Files up to 1 MB are not compared by checksum (``--max-checksum-file-size 0``): a
    chunk file rewritten with the same bytes counts as changed, as a larger one would."""
    (wd / "changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = ["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "changed.yaml", "--max-checksum-file-size", "0", *args]
    res = run(cmd, wd, timeout=900)
    out = res.stdout + res.stderr
    assert (res.returncode != 0) == fails, out[-4000:]
    # one "rule NAME:" block per job run (or, in a dry run, to be run); the job-stats table
    # would miss the jobs added after the plan_chunks checkpoint
    return Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", out, flags=re.M)), out


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished demo run and its config."""
    wd = prepare(tmp_path_factory.mktemp("reruns"), {"ingest": {"max_length": 120}})  # short chains fold fast
    config = yaml.safe_load((wd / "run.yaml").read_text())
    jobs, _ = snakemake(wd, config)
    assert jobs["fold_chunk"] > 1
    return wd, config


def changed(config: dict, section: str, **values) -> dict:
    new = json.loads(json.dumps(config))
    new.setdefault(section, {}).update(values)
    return new


def test_unchanged_config_runs_nothing(done):
    wd, config = done
    assert snakemake(wd, config, "-n")[0] == Counter()


def test_settings_that_cannot_change_a_prediction_fold_nothing(done):
    wd, config = done
    harmless = changed(config, "fold", threads=2, mem_mb=3000, commit_seconds=7, progress_seconds=3, max_batch_size=4,
                       max_tokens_per_batch=512, max_pair_tokens_per_batch=4096, gpu_memory_fraction=0.5, chunks_per_job=3)  # fmt: skip
    assert set(harmless["fold"]) - set(config["fold"]) | {k for k in config["fold"] if harmless["fold"][k] != config["fold"][k]} == set(FoldSettings.OPERATIONAL)
    jobs, _ = snakemake(wd, harmless, "-n")
    # fold packages of a published release are not needed again: no fold job of either kind
    assert jobs["fold_chunk"] == 0 and jobs["fold_package"] == 0 and jobs["plan_chunks"] == 0


def test_reordered_keys_run_nothing(done):
    wd, config = done
    reordered = {k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for k, v in reversed(list(config.items()))}
    assert snakemake(wd, reordered, "-n")[0] == Counter()


def test_a_changed_filter_reassembles_without_folding(done):
    wd, config = done
    jobs, out = snakemake(wd, changed(config, "filter", min_plddt=0.6), "-n")
    assert jobs["assemble_atlas"] == 1 and jobs["check_bucket"] == 1 and jobs["check_accounting"] == 1
    assert jobs["fold_chunk"] == 0 and jobs["plan_chunks"] == 0


@pytest.mark.parametrize("section, values", [("embeddings", {"layers": [-1, 0]}), ("structures", {"formats": ["pdb"]})])
def test_a_setting_that_changes_predictions_plans_again_for_its_fingerprint(done, section, values):
    """Another fingerprint: planning runs again (against that fingerprint's part of the
    store, where nothing is folded yet; the real run is test_another_fingerprint...)."""
    wd, config = done
    jobs, out = snakemake(wd, changed(config, section, **values), "-n")
    assert jobs["plan_chunks"] == 1 and "Params have changed" in out


@pytest.mark.parametrize("product", ["atlas/metadata.parquet", "atlas/structures", "atlas/summary.json"])  # a table, a folder, a JSON
def test_a_deleted_product_is_built_again_without_folding(done, product, tmp_path):
    wd, config = done
    path = wd / "results" / product
    aside = tmp_path / "aside"
    path.rename(aside)
    try:
        jobs, _ = snakemake(wd, config, "-n")
    finally:
        aside.rename(path)
    assert jobs["fold_chunk"] == 0 and jobs["plan_chunks"] == 0 and jobs["assemble_atlas"] == 1


def test_an_atlas_of_0_7_is_upgraded_by_the_atlas_jobs_alone(done):
    """foldatlas 0.7 wrote each table as one file (metadata.parquet, ...,
    structures/index.parquet) and its shards at the top of structures/: a run of 0.8
    removes those files when it starts, writes the tables as folders of one file per
    bucket with the same rows, removes the old shards, and folds and plans nothing."""
    import duckdb

    wd, config = done
    atlas = wd / "results/atlas"
    before = duckdb.sql(f"SELECT * FROM '{atlas / 'metadata.parquet'}' ORDER BY source_index, record_index").fetchall()
    for table in ("metadata.parquet", "embeddings.parquet", "plddt.parquet", "structures/index.parquet"):
        folder = atlas / table
        (folder / "all.parquet").rename(atlas / "single.parquet")
        folder.rmdir()
        (atlas / "single.parquet").rename(folder)  # the layout of 0.7: one file
    old_shards = sorted((atlas / "structures/all").glob("*.tar"))
    for shard in old_shards:
        shard.rename(atlas / "structures" / shard.name)
    hits = wd / "results/foldseek/hits.parquet"  # 0.8's one file of hits, from a run with search
    hits.parent.mkdir(parents=True, exist_ok=True)
    hits.write_bytes(b"PAR1")
    jobs, _ = snakemake(wd, config)
    # foldseek is off here: nothing would remake the hits, so the upgrade keeps their file
    assert hits.is_file()
    hits.unlink()
    assert jobs["fold_chunk"] == 0 and jobs["plan_chunks"] == 0 and jobs["assemble_bucket"] == 1 and jobs["assemble_atlas"] == 1
    assert [p.name for p in (atlas / "metadata.parquet").iterdir()] == ["all.parquet"]
    assert sorted(p.name for p in (atlas / "structures").iterdir()) == ["all", "index.parquet"]
    assert duckdb.sql(f"SELECT * FROM '{atlas / 'metadata.parquet'}' ORDER BY source_index, record_index").fetchall() == before
    assert json.loads((atlas / "accounting.json").read_text())["ok"]


def store_files(wd: Path) -> dict[Path, int]:
    """Every file of the store's chunks, with its modification time."""
    return {p: p.stat().st_mtime_ns for p in (wd / "results/store").glob("*/chunks/chunk_*/*")}


def receipt(wd: Path) -> dict:
    return json.loads((wd / "results/release.json").read_text())


def test_touched_added_and_removed_inputs(done):
    """Touching a large input re-reads it and folds nothing; an added file of known
    sequences is a release without folds; one new sequence, even under mtime triggers
    alone, folds exactly that sequence; a removed file leaves an atlas and accounting of
    exactly the remaining inputs, made from the release of those inputs. The store's
    files are never rewritten."""
    wd, config = done
    folded = store_files(wd)
    first = receipt(wd)["release"]
    (wd / "results/ingest/inputs.json").unlink()  # a product of planning: planned again, nothing folded
    jobs, _ = snakemake(wd, config)
    assert jobs["plan_chunks"] == 1 and jobs["fold_chunk"] == 0 and (wd / "results/ingest/inputs.json").exists()
    assert receipt(wd)["release"] == first and receipt(wd)["releases"] == [first]  # the same inputs: the same release
    big = wd / "more/copies.fa"  # > 1 MB: Snakemake compares small files by checksum
    big.parent.mkdir()
    seq = next(s for s in gzip.open(wd / "resources/demo/proteins.fasta.gz", "rt").read().split(">")[1:])
    seq = "".join(seq.splitlines()[1:])
    big.write_text("".join(f">copy{i}\n{seq}\n" for i in range(20000)))
    assert big.stat().st_size > 1 << 20
    inputs = changed(config, "input", fasta=[*config["input"]["fasta"], str(big.relative_to(wd))])
    n_files = len(json.loads((wd / "results/ingest/inputs.json").read_text())["files"])
    jobs, _ = snakemake(wd, inputs)
    assert jobs["read_fasta"] >= 1 and jobs["plan_chunks"] == 1 and jobs["fold_chunk"] == 0
    assert read_plan(wd / "results/chunks/plan.tsv") == []
    accounting = json.loads((wd / "results/atlas/accounting.json").read_text())
    assert accounting["ok"] and accounting["checks"]["input_files"] == n_files + 1
    second = receipt(wd)["release"]
    assert second != first and receipt(wd)["releases"] == [first, second]

    time.sleep(0.01)
    os.utime(big)  # touched, same content
    jobs, _ = snakemake(wd, inputs)
    assert jobs["plan_chunks"] == 1 and jobs["fold_chunk"] == 0 and receipt(wd)["releases"] == [first, second]
    assert store_files(wd) == folded  # not rewritten

    with big.open("a") as fh:  # one new sequence: a release that folds exactly it
        fh.write(">new\n" + ("MKTAYIAKQR" * 12)[:118] + "\n")
    jobs, _ = snakemake(wd, inputs, "--rerun-triggers", "mtime")
    assert jobs["plan_chunks"] == 1 and jobs["fold_chunk"] == 1
    [plan] = read_plan(wd / "results/chunks/plan.tsv")
    assert plan.n_sequences == 1 and plan.chunk == max(int(p.name[6:]) for p in (wd / "results/store").glob("*/chunks/chunk_*"))
    meta = pq.read_table(wd / "results/atlas/metadata.parquet", columns=["id", "status", "atlas_version"]).to_pylist()
    third = receipt(wd)["release"]
    assert {(m["status"], m["atlas_version"]) for m in meta if m["id"] == "new"} == {("folded", third)}
    assert {p: t for p, t in store_files(wd).items() if p in folded} == folded

    # the added file removed again: under mtime triggers alone a stop that says so (never
    # "Nothing to be done" with the old atlas), with the profile's triggers a new plan
    _, out = snakemake(wd, config, "-n", "--rerun-triggers", "mtime", fails=True)
    assert "1 input file(s) removed since the chunks were planned (more/copies.fa)" in out and "--forcerun plan_chunks" in out
    jobs, _ = snakemake(wd, config)
    assert jobs["fold_chunk"] == 0 and receipt(wd)["release"] == first
    meta = pq.read_table(wd / "results/atlas/metadata.parquet", columns=["source"])
    assert str(big.relative_to(wd)) not in set(meta["source"].to_pylist())
    accounting = json.loads((wd / "results/atlas/accounting.json").read_text())
    assert accounting["ok"] and accounting["checks"]["input_files"] == n_files
    summary = json.loads((wd / "results/atlas/summary.json").read_text())
    assert [f["source"] for f in summary["inputs"]] == [f["source"] for f in json.loads((wd / "results/ingest/inputs.json").read_text())["files"]]
    assert [r["name"] for r in summary["releases"]] == [first, second, third] and summary["release"] == first


def test_another_fingerprint_folds_again_and_keeps_both_apart(done):
    """num_recycles changes predictions: every unique sequence is folded under the new
    fingerprint, in its own part of the store; going back folds nothing, and the first
    fingerprint's files were never touched."""
    from foldatlas.layout import Layout
    from foldatlas.settings import model_fingerprint
    from foldatlas.store import verify_release

    wd, config = done
    before = store_files(wd)
    other = changed(config, "fold", num_recycles=0)  # one trunk pass: the cheapest other fingerprint
    jobs, _ = snakemake(wd, other)
    n_unique = pq.read_metadata(wd / "results/ingest/sequences.parquet").num_rows
    plans = read_plan(wd / "results/chunks/plan.tsv")
    assert jobs["fold_chunk"] == len(plans) and sum(p.n_sequences for p in plans) == n_unique
    full = {k: v for k, v in json.loads(json.dumps(other)).items()}
    from foldatlas.config import validate_config

    fingerprints = {model_fingerprint(validate_config(json.loads(json.dumps(c)))) for c in (config, full)}
    assert {p.name for p in (wd / "results/store").iterdir()} == fingerprints and len(fingerprints) == 2
    assert {p: t for p, t in store_files(wd).items() if p in before} == before
    jobs, _ = snakemake(wd, config)
    assert jobs["fold_chunk"] == 0 and jobs["plan_chunks"] == 1
    store = Layout(wd / "results").store(model_fingerprint(validate_config(json.loads(json.dumps(config)))))
    assert all(verify_release(store, r) == [] for r in receipt(wd)["releases"])
