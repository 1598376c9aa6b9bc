"""End-to-end Snakemake runs of the whole workflow on the tiny model (CPU)."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from foldatlas.archive import read_member, read_structure_archive
from foldatlas.atlas import ATLAS_BINS, crc64_hex
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
    for folder in ("ingest", "chunks", "store", "atlas", "report", "logs", "benchmarks"):
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


def test_summary_records_every_input_file_as_read_here(demo_run, tmp_path):
    """summary.json's per-file records match a recount made here with gzip and hashlib;
    check_accounting refuses a summary whose records were altered or removed."""
    import hashlib

    from foldatlas.accounting import check_accounting
    from foldatlas.errors import AccountingError
    from foldatlas.layout import Layout

    files = json.loads((demo_run.results / "atlas/summary.json").read_text())["inputs"]
    assert [f["source"] for f in files] == sorted(str(p.relative_to(demo_run.wd)) for p in (demo_run.wd / "resources/demo").glob("*.fa*"))
    for f in files:
        raw = (demo_run.wd / f["source"]).read_bytes()
        text = gzip.decompress(raw) if f["source"].endswith(".gz") else raw
        assert (f["file_bytes"], f["text_bytes"], f["text_sha256"]) == (len(raw), len(text), hashlib.sha256(text).hexdigest())
        assert f["format"] == ("gzip" if f["source"].endswith(".gz") else "plain")
        assert f["records"] == sum(line.startswith(b">") for line in text.splitlines())
    layout = Layout(demo_run.results)
    summary = json.loads(layout.atlas.summary.read_text())
    copy = Layout(tmp_path)  # the demo's atlas files, with a summary altered below
    shutil.copytree(layout.atlas.root, copy.atlas.root, ignore=shutil.ignore_patterns("structures"))
    copy.atlas.structures.symlink_to(layout.atlas.structures)
    args = dict(records=layout.records, sequences=layout.sequences, outputs=copy.atlas, report=tmp_path / "a.json", inputs=layout.inputs)
    assert check_accounting(**args)["ok"]
    for altered, problem in ((dict(files[0], text_sha256="0" * 64), "inputs differ"), (None, "has no per-file inputs")):
        copy.atlas.summary.write_text(json.dumps({**summary, "inputs": [altered, *files[1:]]} if altered else {k: v for k, v in summary.items() if k != "inputs"}))
        with pytest.raises(AccountingError, match=problem):
            check_accounting(**args)


def test_tables_have_documented_schemas(demo_run):
    r = demo_run.results
    for path, schema in (
        ("ingest/records.parquet", RECORDS_SCHEMA),
        ("ingest/sequences.parquet", SEQUENCES_SCHEMA),
        ("atlas/plddt.parquet/all.parquet", PLDDT_SCHEMA),  # an atlas table: a folder of one file per bucket
        ("atlas/structures/index.parquet/all.parquet", INDEX_SCHEMA),
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
        assert (r["archive"] or "").startswith("structures/all/highconf_") == expected


def test_embeddings_read_back_with_duckdb_match_fold_outputs(demo_run):
    import duckdb

    path = demo_run.results / "atlas/embeddings.parquet"
    rows = duckdb.connect().execute(f"SELECT checksum, layer, embedding, len(embedding) FROM '{path}'").fetchall()
    assert {r[3] for r in rows} == {64}
    fold = {}
    for p in (demo_run.results / "store").glob("*/chunks/chunk_*/embeddings.parquet"):
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
    for p in (demo_run.results / "store").glob("*/chunks/chunk_*/structures.tar"):
        fold.update(read_structure_archive(p))
    random.seed(0)
    for e in random.sample(index, 8):
        data = read_member(atlas / e["archive"], e["data_offset"], e["data_length"], expect=e["member"])
        assert data.decode() == fold[e["member"].removesuffix(".gz")] and len(data) == e["pdb_size"]
        cif = read_member(atlas / e["archive"], e["cif_offset"], e["cif_length"], expect=e["cif_member"])
        assert cif.decode() == fold[e["cif_member"].removesuffix(".gz")]


def test_every_shard_is_read_whole_by_every_reader(demo_run):
    """GNU tar, tarfile seeking and streaming, and the index's byte ranges all see every member."""
    root = demo_run.results
    index = pq.read_table(root / "atlas/structures/index.parquet").to_pylist()
    shards = sorted((root / "atlas/structures").glob("*/*.tar")) + sorted((root / "store").glob("*/chunks/chunk_*/structures.tar"))
    assert len(shards) > 4
    seen = 0
    for shard in shards:
        gnu = subprocess.run(["tar", "tf", str(shard)], capture_output=True, text=True, check=True).stdout.split()
        with tarfile.open(shard, "r:") as tar:
            seek = tar.getnames()
        with open(shard, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
            stream = {m.name: gzip.decompress(tar.extractfile(m).read()) for m in tar}  # type: ignore[union-attr]
        assert gnu == seek == list(stream) and len(gnu) == len(set(gnu)) > 0, shard
        assert all(n.endswith((".pdb.gz", ".cif.gz")) for n in gnu)
        in_index = sorted(m for r in index if root / "atlas" / r["archive"] == shard for m in (r["member"], r["cif_member"]))
        if shard.parent.parent.name == "structures":  # an atlas shard, in its bucket's folder
            assert sorted(gnu) == in_index
            seen += len(gnu)
    assert seen == 2 * len(index)


def test_structures_read_back_in_gemmi_and_foldcomp(demo_run):
    import foldcomp
    import gemmi

    atlas = demo_run.results / "atlas"
    index = pq.read_table(atlas / "structures/index.parquet").to_pylist()
    seqs = dict(zip(*pq.read_table(demo_run.results / "ingest/sequences.parquet", columns=["checksum", "sequence"]).to_pydict().values()))
    for e in index:
        pdb = gemmi.read_pdb_string(read_member(atlas / e["archive"], e["data_offset"], e["data_length"]).decode())
        cif = gemmi.make_structure_from_block(gemmi.cif.read_string(read_member(atlas / e["archive"], e["cif_offset"], e["cif_length"]).decode())[0])
        atoms = [pdb[0].count_atom_sites() if len(pdb) else 0, cif[0].count_atom_sites() if len(cif) else 0]
        assert atoms[0] == atoms[1] > 0  # all-X chains too: their backbone comes from the predicted frames
        if atoms[0]:
            assert [r.name for r in pdb[0][0]] == [r.name for r in cif[0][0]]
    summary = json.loads((atlas / "summary.json").read_text())["structures"]
    fc = summary["foldcomp"]
    hc = [e for e in index if e["collection"] == "highconf"]
    assert fc["checked"] == len(hc) and fc["written"] + fc["left_out"] == len(hc)
    for e in hc:  # each one checked: in the database within the tolerance, or left out with its reason
        assert (e["in_foldcomp"] and e["foldcomp_rmsd"] <= fc["tolerance"]) or (not e["in_foldcomp"] and e["foldcomp_reason"]), e
    with foldcomp.open(str(atlas / "structures/all/foldcomp/highconf")) as db:
        names = [name for name, _ in db]
    assert sorted(names) == sorted(e["checksum"] for e in hc if e["in_foldcomp"])
    # the tiny random model's chains are broken (peptide bonds of tens of A): none survives
    assert all("exceeds atlas.foldcomp_max_rmsd" in e["foldcomp_reason"] for e in hc if not e["in_foldcomp"])
    assert {seqs[e["checksum"]][:1] for e in hc} <= set("ACDEFGHIKLMNPQRSTVWYXBZUO")


def test_unknown_residues_keep_their_place_in_the_chain(demo_run):
    import gemmi

    fold = {}
    for p in (demo_run.results / "store").glob("*/chunks/chunk_*/structures.tar"):
        fold.update(read_structure_archive(p))
    seqs = dict(zip(*pq.read_table(demo_run.results / "ingest/sequences.parquet", columns=["checksum", "sequence"]).to_pydict().values()))
    with_x = [c for c, s in seqs.items() if "X" in s]
    assert with_x  # the demo's with_unknown_residues record and the all-X hostile one
    for c in with_x:
        chain = gemmi.read_pdb_string(fold[f"{c}.pdb"])[0][0]
        assert [r.seqid.num for r in chain] == list(range(1, len(seqs[c]) + 1))


def test_no_path_is_built_from_fasta_text(demo_run):
    for path in demo_run.results.rglob("*"):
        rel = str(path.relative_to(demo_run.results))
        assert "passwd" not in rel and "pwned" not in rel and "dup_id" not in rel and "$" not in rel
    assert not (demo_run.wd / "pwned").exists() and not Path("pwned").exists()


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    from chromium import Chromium

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not installed (apt-get install chromium); .ci/run installs it")
    page = demo_run.results / "report/atlas_report.html"
    html = page.read_text()
    assert "<script" not in html.split("<body>")[1].split('<div class="views">')[0]  # header text is escaped, never markup
    assert "$(touch" in html or "../../etc/passwd" in html or "gapped" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched: offline
    browser = Chromium(binary, tmp_path / "profile")
    try:
        browser.load(page.as_uri())
        time.sleep(1)  # let the 3D views draw
        state = browser.evaluate(
            "JSON.stringify({images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),"
            " views: document.querySelectorAll('[data-rendered=yes]').length, canvases: document.querySelectorAll('.view canvas').length,"
            " figures: Array.from(document.querySelectorAll('figure[id]')).map(f => f.id),"
            " summary: document.getElementById('summary-link').href, best: document.querySelectorAll('#best a[download]').length})"
        )
        shot = browser.screenshot(tmp_path / "report.png")
        errors = browser.errors()
        browser.evaluate("console.error('probe')")  # the error capture itself works
        probe = browser.errors()
    finally:
        browser.close()
    s = json.loads(state)  # type: ignore[arg-type]
    assert errors == [] and len(probe) == 1
    assert len(s["images"]) == 7 and all(s["images"])
    assert s["figures"][:4] == ["funnel", "bins", "bands", "traces"]
    assert s["views"] == s["canvases"] == 3 and s["best"] == 10
    assert s["summary"] == (demo_run.results / "atlas/summary.json").as_uri()
    assert shot.stat().st_size > 100_000


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


FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.M | re.S)
#: Code blocks of the READMEs that the test does not run, by their first line, and why.
NOT_RUN = {
    "make demo   # run the whole workflow on the bundled example, offline, on the CPU": "the demo itself: demo_run runs the same workflow",
    "snakemake --profile cluster --configfile my.yaml": "needs Slurm: tests/test_slurm.py runs --profile cluster",
    "printf '>new1 a sequence no release has folded\\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQV\\n' > more.fa": (
        "a second release after the demo: tests/test_store.py runs release 2 over added input"
    ),
    "Snakefile                  table of contents: config validation, includes, rule all": "the repository's tree, not a command",
}


def readme_blocks() -> list[tuple[str, str, str]]:
    """(file, language, code) of every fenced code block of README.md and config/README.md."""
    out = []
    for name in ("README.md", "config/README.md"):
        for m in FENCE.finditer((REPO / name).read_text()):
            indent = len(m.group(0)) - len(m.group(0).lstrip(" "))  # a block inside a list item
            out.append((name, m.group(1), "\n".join(line[indent:] for line in m.group(2).splitlines())))
    return out


def test_every_readme_code_block_runs_against_the_demo(demo_run, tmp_path):
    from foldatlas.config import validate_config

    (tmp_path / "results").symlink_to(demo_run.results)
    ran = 0
    for name, lang, code in readme_blocks():
        first = code.splitlines()[0]
        if first in NOT_RUN:
            continue
        if lang == "python":
            res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, f"{name}: block starting {first!r} failed:\n{res.stderr[-3000:]}"
            assert res.stdout.strip(), first
        elif lang == "yaml":
            validate_config(yaml.safe_load(code), str(REPO / "workflow/schemas/config.schema.yaml"))
        elif lang == "text" and first == "results/":  # the output tree: every file it names exists
            for line in code.splitlines()[1:]:
                path = line.split()[0] if line.strip() and not line.startswith(" " * 10) else ""
                if path.endswith((".parquet", ".json", ".html", ".yaml")) and not path.startswith(("foldseek/", "mmseqs/")):  # off in the demo
                    assert list(demo_run.results.glob(path.replace("NNNNNN", "*"))), path
        elif lang == "text" and first == "<store.path>/<fingerprint>/":  # the store: every file and folder it names exists
            for line in code.splitlines()[1:]:
                path = line.split()[0] if line.strip() and not line.startswith(" " * 10) else ""
                if path:
                    assert list((demo_run.results / "store").glob("*/" + path.replace("NNNNNN", "*").replace("<name>", "*").replace("HH", "*"))), path
        else:
            pytest.fail(f"{name}: a {lang or 'plain'} block starting {first!r} is neither run nor listed in NOT_RUN")
        ran += 1
    assert ran >= 7


def test_metadata_matches_the_atlas_conventions(demo_run):
    meta = pq.read_table(demo_run.results / "atlas/metadata.parquet").to_pylist()
    seqs = dict(zip(*pq.read_table(demo_run.results / "ingest/sequences.parquet", columns=["checksum", "sequence"]).to_pydict().values()))
    folded = [r for r in meta if r["status"] == "folded"]
    assert folded and all(r["bin"] in ATLAS_BINS for r in folded)
    assert all(r["mean_pae"] is not None and 0 < r["mean_pae"] <= r["max_pae"] for r in folded)
    kept = [r for r in meta if r["checksum"] in seqs]
    assert [r["crc64"] for r in kept] == crc64_hex([seqs[r["checksum"]] for r in kept])
    assert all(r["crc64"] is None for r in meta if r["checksum"] not in seqs)  # rejected at ingest: no sequence kept


def test_provenance_sits_next_to_the_data(demo_run):
    atlas = demo_run.results / "atlas"
    cfg = yaml.safe_load((atlas / "config.yaml").read_text())
    run_cfg = yaml.safe_load((demo_run.wd / "run.yaml").read_text())
    assert cfg["output"]["root"] == str(demo_run.results) and cfg["fold"]["model"] == "tiny"
    assert cfg["structures"]["formats"] == run_cfg["structures"]["formats"] == ["pdb", "cif"]
    assert cfg["atlas"]["memory_gb"] == 4  # defaults are filled in: the resolved configuration
    for path in ("metadata.parquet", "embeddings.parquet", "plddt.parquet", "structures/index.parquet"):
        kv = json.loads(pq.read_schema(atlas / path / "all.parquet").metadata[b"foldatlas"])  # one bucket: the demo is not split
        assert kv["model_ids"] == ["tiny-random-esmfold-seed0"] and {"foldatlas", "torch", "pyarrow", "duckdb"} <= set(kv["versions"]), path


def test_missing_foldseek_stops_neither_dry_runs_nor_lint(tmp_path):
    wd = prepare(tmp_path, {"foldseek": {"enabled": True, "binary": "no-such-foldseek"}})
    dry = run(["-s", str(REPO / "Snakefile"), "--cores", "1", "--configfile", "run.yaml", "-n"], wd, timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    lint = run(["-s", str(REPO / "Snakefile"), "--configfile", "run.yaml", "--lint"], wd, timeout=300)
    assert "no-such-foldseek" not in lint.stdout + lint.stderr
    # a real local run looks on this host's PATH at once, before any job, and says how to install it
    real = run(["-s", str(REPO / "Snakefile"), "--cores", "1", "--configfile", "run.yaml"], wd, timeout=300)
    out = real.stdout + real.stderr
    assert real.returncode != 0 and "foldseek.binary: 'no-such-foldseek' not found on PATH" in out and "--sdm conda" in out
    assert "Traceback" not in out and not (wd / "results/ingest").exists()


def test_annotation_jobs_are_planned_one_per_bucket_over_a_finished_atlas(demo_run, tmp_path):
    # foldseek need not be installed for a dry run: the jobs and their sized resources are
    # computed from the atlas's files (this is what runs where foldseek is absent, as in CI)
    extra = tmp_path / "annotate.yaml"
    extra.write_text(yaml.safe_dump({"foldseek": {"enabled": True, "binary": "no-such-foldseek", "search": {"targets": ["resources/demo"]}}}))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", str(extra), "-n", "--quiet", "rules"], demo_run.wd, timeout=300)
    # a dry run evaluates every planned job's resource callables: a sizing error fails here
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M)}
    # one bucket (the demo atlas is not split): one createdb, one database per bin (atlas.bins) and one search, the target made a database once
    assert {k: v for k, v in counts.items() if k.startswith("foldseek")} == {
        "foldseek_createdb": 1, "foldseek_bins_db": 1, "foldseek_representatives": 1, "foldseek_cluster": 1, "foldseek_target_db": 1, "foldseek_search": 1}  # fmt: skip
    assert counts.get("assemble_bucket", 0) == 0  # the atlas is not made again
    # the structural clustering as a cascade (foldseek.cluster.shards): the pre-clustering,
    # then per round one search job per shard and one clust job, then the merge
    cascade = tmp_path / "cascade.yaml"
    cascade.write_text(yaml.safe_dump({"foldseek": {"enabled": True, "binary": "no-such-foldseek", "cluster": {"shards": 3, "steps": 2}}}))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", str(cascade), "-n", "--quiet", "rules"], demo_run.wd, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M)}
    assert {k: v for k, v in counts.items() if k.startswith("foldseek_cluster")} == {
        "foldseek_cluster_linclust": 1, "foldseek_cluster_search": 6, "foldseek_cluster_round": 2, "foldseek_cluster": 1}  # fmt: skip
    # one bucket's database or hits asked for alone, as a job on a cluster node is: the
    # params that read the plan need the plan_chunks checkpoint among the job's inputs
    for target in ("foldseek/db/all", "foldseek/hits.parquet/all.parquet"):
        res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", str(extra), "-n", str(demo_run.results / target)], demo_run.wd, timeout=300)
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    # a target database asked for by a number that is no search target of structures: no rule
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", str(extra), "-n", str(demo_run.results / "foldseek/targets/7/db")], demo_run.wd, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "No rule to produce" in out and "foldseek/targets/7/db" in out, out[-3000:]


def test_planning_one_checksum_bucket_a_job_runs_through_to_the_accounting(demo_run, tmp_path):
    """ingest.bucket_digits: 1 on the demo: 16 plan_bucket jobs, whose temporary folders
    go; the same records and unique sequences as the one-job plan of demo_run, chunks
    within one bucket each, and an accounting that holds. The atlas is made without
    copies (atlas.copy_structures: false): its index points into the store's fold
    archives, which the accounting and the report read."""
    wd = prepare(tmp_path, {"ingest": {"bucket_digits": 1}, "fold": {"chunks_per_job": 8}, "atlas": {"copy_structures": False}})
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    results = wd / "results"
    assert sorted(p.stem for p in (results / "benchmarks/plan_bucket").glob("*.tsv")) == [f"{i:x}" for i in range(16)]
    assert not (results / "ingest/buckets").exists() or not any((results / "ingest/buckets").iterdir()), "temporary plans are removed"
    assert not any((results / "ingest/parts").glob("*.buckets")), "temporary parts are removed"
    keys = [("source_index", "ascending"), ("record_index", "ascending")]
    records = pq.read_table(results / "ingest/records.parquet")
    assert records.sort_by(keys).equals(pq.read_table(demo_run.results / "ingest/records.parquet").sort_by(keys))
    cols = ["checksum", "length", "n_records"]
    assert pq.read_table(results / "ingest/sequences.parquet", columns=cols).sort_by("checksum").equals(
        pq.read_table(demo_run.results / "ingest/sequences.parquet", columns=cols).sort_by("checksum")
    )
    plan = [r.split("\t") for r in (results / "chunks/plan.tsv").read_text().splitlines()[1:]]
    seqs = pq.read_table(results / "ingest/sequences.parquet", columns=["checksum", "chunk"]).to_pylist()
    assert all({s["checksum"][0] for s in seqs if s["chunk"] == int(row[0])} == {row[-1]} for row in plan)
    assert {row[-1] for row in plan} == {s["checksum"][0] for s in seqs}, "every bucket with sequences has its chunks"
    # bucket order: records with a checksum by its first digit (those without it first)
    firsts = [c[0] if c else "0" for c in records["checksum"].to_pylist()]
    assert firsts == sorted(firsts)
    assert json.loads((results / "atlas/accounting.json").read_text())["ok"] is True
    # no copies: no shards; every entry is read from the fold job's archive in the store
    assert not list((results / "atlas/structures").rglob("*.tar"))
    index = pq.read_table(results / "atlas/structures/index.parquet").to_pylist()
    highconf = {m["checksum"] for m in pq.read_table(results / "atlas/metadata.parquet").to_pylist() if m["high_confidence"]}
    assert highconf and sorted(r["checksum"] for r in index if r["collection"] == "highconf") == sorted(highconf)
    for r in index:
        assert r["archive"].startswith("../store/") and r["archive"].endswith("/structures.tar")
        assert len(read_member(results / "atlas" / r["archive"], r["data_offset"], r["data_length"], expect=r["member"])) == r["pdb_size"]
    assert re.search(r"chunk_\d{6}/structures\.tar<br>", (results / "report/atlas_report.html").read_text()), "the report names each structure's chunk"
    # fold packages and bucket plans are jobs, not products: once the release is
    # published, a second run has nothing to do (it once published every bucket again)
    again = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-4000:]
