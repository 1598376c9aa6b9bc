"""End-to-end Snakemake runs of the whole workflow on the tiny model (CPU)."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from foldatlas.archive import read_member, read_structure_archive
from foldatlas.tables import INDEX_SCHEMA, METADATA_SCHEMA, PLDDT_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
HOSTILE = [
    ("../../etc/passwd path-like id", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQV"),
    ("$(touch${IFS}pwned);`id`|&> shell metacharacters", "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQ"),
    ("caf\u00e9\u0007 non-ASCII and a control character", "MADQLTEEQIAEFKEAFSLFDKDGDGTITTKELGTVMRSLGQNPTEAELQDMINEVDAD"),
    ("dup_id same id twice, different sequences", "MKVLAAGIVGLLLAAAQPAMAQVQLQESGGGLVQPGGSLRLSCAASGFTFSSYAMSWV"),
    ("dup_id second", "MGSSHHHHHHSSGLVPRGSHMASMTGGQQMGRGSEFELRRQACGRTRAPPPPPLRSG"),
    ("all_unknown", "X" * 40),
    ("internal_stop", "MKTAYIAK*QRQISFVKSHFSRQLEERLGLIEVQ"),
    ("too_long", "A" * 1300),
    ("at_max", "MKTAYIAKQRQISFVKSHFSRQ" * 10),
]


def run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, **kw)


def prepare(tmp: Path, extra: dict | None = None) -> Path:
    """A working directory with the shipped config, the demo overlay and the demo inputs."""
    (tmp / "config").mkdir(parents=True)
    shutil.copy(REPO / "config/config.yaml", tmp / "config/config.yaml")
    shutil.copytree(REPO / "resources", tmp / "resources")
    hostile = tmp / "resources/demo/hostile.fa.gz"
    with gzip.open(hostile, "wt") as fh:
        for h, s in HOSTILE:
            fh.write(f">{h}\n{s}\n")
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    cfg["input"]["fasta"] = ["resources/demo/*.fa*"]
    cfg["ingest"] = {"max_length": 220}
    for key, value in (extra or {}).items():
        cfg.setdefault(key, {}).update(value)
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


@dataclass(frozen=True)
class Run:
    wd: Path  # the working directory (config, inputs, .snakemake)
    results: Path  # output.root, elsewhere


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo, with output.root on another file system path, as core facilities set it."""
    results = tmp_path_factory.mktemp("scratch") / "atlas-results"
    wd = prepare(tmp_path_factory.mktemp("wf"), {"output": {"root": str(results)}})
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return Run(wd, results)


def test_output_root_holds_everything(demo_run):
    assert sorted(p.name for p in demo_run.wd.iterdir()) == [".snakemake", "config", "resources", "run.yaml"]
    for folder in ("ingest", "chunks", "fold", "atlas", "report", "logs", "benchmarks"):
        assert (demo_run.results / folder).is_dir(), folder
    assert not [p for p in demo_run.results.rglob(".*") if p.name != ".snakemake_timestamp"], "hidden temporary files left"


def input_records(wd: Path) -> list[str]:
    ids = []
    for path in sorted((wd / "resources/demo").glob("*.fa*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            ids += [line[1:].split()[0] if line[1:].split() else "" for line in fh if line.startswith(">")]
    return ids


def test_every_input_record_is_in_metadata(demo_run):
    meta = pq.read_table(demo_run.results / "atlas/metadata.parquet")
    assert meta.schema.equals(METADATA_SCHEMA, check_metadata=False)
    assert sorted(meta["id"].to_pylist()) == sorted(input_records(demo_run.wd))
    rows = {(r["id"], r["header"]): r for r in meta.to_pylist()}
    assert rows[("internal_stop", "internal_stop")]["status"] == "invalid_characters"
    assert rows[("too_long", "too_long")]["status"] == "too_long"
    assert rows[("at_max", "at_max")]["status"] == "folded"
    assert rows[("all_unknown", "all_unknown")]["status"] == "folded"
    assert rows[("../../etc/passwd", "../../etc/passwd path-like id")]["status"] == "folded"
    dups = [r for r in meta.to_pylist() if r["is_duplicate"]]
    assert len(dups) == 4 and all(r["plddt"] is not None for r in dups)
    assert (demo_run.results / "atlas/accounting.json").read_text().count('"ok": true') == 1


def test_tables_have_documented_schemas(demo_run):
    r = demo_run.results
    for path, schema in (
        ("ingest/records.parquet", RECORDS_SCHEMA),
        ("ingest/sequences.parquet", SEQUENCES_SCHEMA),
        ("atlas/plddt.parquet", PLDDT_SCHEMA),
        ("atlas/structures/index.parquet", INDEX_SCHEMA),
    ):
        assert pq.read_schema(r / path).equals(schema, check_metadata=False), path


def test_readers_duckdb_and_polars_agree(demo_run):
    import duckdb
    import polars as pl

    path = demo_run.results / "atlas/metadata.parquet"
    con = duckdb.connect()
    d = con.execute(f"SELECT count(*), count(*) FILTER (WHERE high_confidence), avg(plddt) FROM '{path}'").fetchone()
    p = pl.read_parquet(path)
    assert d[0] == p.height
    assert d[1] == p.filter(pl.col("high_confidence")).height
    assert d[2] == pytest.approx(p["plddt"].mean(), rel=1e-6)


def test_filter_has_both_outcomes_and_follows_the_rule(demo_run):
    cfg = yaml.safe_load((demo_run.wd / "run.yaml").read_text())["filter"]
    meta = pq.read_table(demo_run.results / "atlas/metadata.parquet").to_pylist()
    folded = [r for r in meta if r["status"] == "folded"]
    hc = [r["high_confidence"] for r in folded]
    assert any(hc) and not all(hc)
    for r in folded:
        expected = r["plddt"] > cfg["min_plddt"] and r["ptm"] > cfg["min_ptm"] and not r["artefact"]
        assert r["high_confidence"] == expected
        assert (r["archive"] or "").startswith("structures/highconf_") == expected


def test_embeddings_read_back_with_duckdb_match_fold_outputs(demo_run):
    import duckdb

    path = demo_run.results / "atlas/embeddings.parquet"
    rows = duckdb.connect().execute(f"SELECT checksum, layer, embedding, len(embedding) FROM '{path}'").fetchall()
    assert {r[3] for r in rows} == {64}
    fold = {}
    for p in (demo_run.results / "fold").glob("chunk_*/embeddings.parquet"):
        t = pq.read_table(p)
        for c, layer, e in zip(t["checksum"].to_pylist(), t["layer"].to_pylist(), t["embedding"].to_pylist()):
            fold[(c, layer)] = e
    assert len(rows) == len(fold) == pq.read_metadata(demo_run.results / "ingest/sequences.parquet").num_rows
    for c, layer, e, _ in rows:
        np.testing.assert_array_equal(np.array(e, dtype=np.float32), np.array(fold[(c, layer)], dtype=np.float32))


def test_random_access_through_the_index(demo_run):
    atlas = demo_run.results / "atlas"
    index = pq.read_table(atlas / "structures/index.parquet").to_pylist()
    fold = {}
    for p in (demo_run.results / "fold").glob("chunk_*/structures.tar.gz"):
        fold.update(read_structure_archive(p))
    random.seed(0)
    for e in random.sample(index, 8):
        data = read_member(atlas / e["archive"], e["offset"], e["length"], expect=e["member"])
        assert data.decode() == fold[e["member"]]
    # the shards are ordinary tar.gz files too
    shard = atlas / index[0]["archive"]
    names = subprocess.run(["tar", "tzf", str(shard)], capture_output=True, text=True, check=True).stdout.split()
    assert index[0]["member"] in names


def test_foldcomp_round_trip(demo_run):
    import foldcomp
    import gemmi

    atlas = demo_run.results / "atlas"
    index = {e["checksum"]: e for e in pq.read_table(atlas / "structures/index.parquet").to_pylist() if e["collection"] == "highconf"}
    seqs = dict(zip(*pq.read_table(demo_run.results / "ingest/sequences.parquet", columns=["checksum", "sequence"]).to_pydict().values()))
    seen = 0
    with foldcomp.open(str(atlas / "structures/foldcomp/highconf")) as db:
        for name, pdb in db:
            e = index[name]
            original = gemmi.read_pdb_string(read_member(atlas / e["archive"], e["offset"], e["length"]).decode())
            back = gemmi.read_pdb_string(pdb)
            a, b = original[0][0], back[0][0]
            assert gemmi.one_letter_code([r.name for r in b]) == gemmi.one_letter_code([r.name for r in a])
            assert "".join(gemmi.find_tabulated_residue(r.name).one_letter_code.upper() for r in b) == seqs[name].replace("X", "")
            assert [sorted(at.name for at in r) for r in a] == [sorted(at.name for at in r) for r in b]  # order differs
            ca_a = np.array([r["CA"][0].b_iso for r in a])
            ca_b = np.array([r["CA"][0].b_iso for r in b])
            np.testing.assert_allclose(ca_b, ca_a, atol=1.0)  # Foldcomp quantises B-factors
            seen += 1
    assert seen == len(index) > 0


def test_no_path_is_built_from_fasta_text(demo_run):
    for path in demo_run.results.rglob("*"):
        rel = str(path.relative_to(demo_run.results))
        assert "passwd" not in rel and "pwned" not in rel and "dup_id" not in rel and "$" not in rel
    assert not (demo_run.wd / "pwned").exists() and not Path("pwned").exists()


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium); .ci/run installs it")
    page = demo_run.results / "report/atlas_report.html"
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "Counts funnel" in dom and dom.count("data:image/png;base64,") == 4
    assert "$(touch" in dom or "../../etc/passwd" in dom or "gapped" in dom
    assert "<script" not in dom.split("<body>")[1]  # header text is escaped, never markup
    shot = tmp_path / "report.png"
    subprocess.run([*args, "--window-size=1100,2600", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000


def test_rerun_has_nothing_to_do(demo_run):
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", "-n"], demo_run.wd, timeout=300)
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"filter": {"min_plddt": 70}}, "config key 'filter.min_plddt' = 70 is out of range: expected a number in [0, 1]"),
        ({"chunks": {"max_sequences": 0}}, "config key 'chunks.max_sequences' = 0 is out of range"),
        ({"fold": {"num_recylces": 3}}, "unknown config key 'fold.num_recylces' (did you mean 'num_recycles'?)"),
        ({"input": {"fasta": ["nothing/*.fasta"]}}, "nothing/*.fasta: glob matches no file"),
    ],
)
def test_bad_config_fails_at_start_up(tmp_path, extra, message):
    wd = prepare(tmp_path, extra)
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "1", "--configfile", "run.yaml", "-n"], wd, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert message in out
    assert "Traceback" not in out


def test_lint_and_format_are_clean():
    res = subprocess.run(SNAKEMAKE + ["--lint", "--configfile", "config/demo.yaml"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "good condition" in res.stdout + res.stderr, res.stdout + res.stderr
    snakefmt = Path(sys.executable).with_name("snakefmt")
    res = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
