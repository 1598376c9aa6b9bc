"""foldseek and mmseqs2 wrappers: command building, parsing, and runs of the real programs.

Parsers are tested on outputs the real foldseek wrote (tests/data/foldseek/, made with
foldseek built from source; row order as it came). Runs of the programs themselves skip,
with the reason, when the binary is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from foldatlas.annotate import cluster_args, clusters_table, entry_checksum, mmseqs_linclust, parse_cluster_tsv, parse_m8
from foldatlas.errors import ConfigError
from foldatlas.settings import FoldseekSettings, MmseqsSettings
from foldatlas.tables import CLUSTERS_SCHEMA, HITS_SCHEMA, SEQ_CLUSTERS_SCHEMA
from foldatlas.fasta import sequence_checksum
from foldatlas.tools import ToolError, find_binary, run_tool

DATA = REPO / "tests/data/foldseek"
FOLDSEEK = shutil.which("foldseek")
MMSEQS = shutil.which("mmseqs")


def test_run_tool_records_command_exit_code_and_stderr():
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('something broke\\n'); sys.exit(3)"]
    with pytest.raises(ToolError) as info:
        run_tool(cmd)
    assert info.value.returncode == 3 and info.value.command == cmd
    assert "something broke" in info.value.stderr and "exit code 3" in str(info.value)


def test_run_tool_never_uses_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    out = run_tool(["echo", f"$(touch {marker})", ";", "rm", "-rf", "/"])
    assert not marker.exists() and "$(touch" in out


def test_missing_binary_fails_with_instructions():
    with pytest.raises(ConfigError, match=r"foldseek.binary: 'no-such-foldseek' not found on PATH\. Install it from bioconda"):
        find_binary("no-such-foldseek", key="foldseek.binary", install="Install it from bioconda.")


@pytest.mark.parametrize("name", ["0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef.pdb", "0123456789abcdef0123456789abcdef_A",
                                  "0123456789abcdef0123456789abcdef.pdb_A", "0123456789abcdef0123456789abcdef.pdb.gz_A", "0123456789abcdef0123456789abcdef.cif.gz"])
def test_entry_names_map_back_to_checksums(name):
    assert entry_checksum(name) == "0123456789abcdef0123456789abcdef"


def test_entry_name_that_is_not_a_checksum_is_an_error():
    with pytest.raises(ValueError, match="expected an entry named after a 32-digit checksum"):
        entry_checksum("../../etc/passwd_A")


def test_cluster_params_build_the_documented_options():
    cluster = {"coverage": 0.9, "cov_mode": 1, "evalue": 0.01, "alignment_type": 1, "tmscore_threshold": 0.5, "lddt_threshold": 0.3}
    assert cluster_args(FoldseekSettings.from_config({"cluster": cluster}).cluster) == [
        "-c", "0.9", "--cov-mode", "1", "-e", "0.01", "--alignment-type", "1", "--tmscore-threshold", "0.5", "--lddt-threshold", "0.3",
    ]  # fmt: skip


def test_best_confidence_representatives():
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    conf = {a: (0.5, 0.5), b: (0.9, 0.8), c: (0.95, 0.1)}
    t = clusters_table([(a, a), (a, b), (a, c)], conf, best_confidence=True).to_pylist()
    assert {r["representative"] for r in t} == {b}
    assert sorted(r["member"] for r in t) == [a, b, c] and [r["is_representative"] for r in t if r["member"] == b] == [True]
    t = clusters_table([(a, a), (a, b), (a, c)], conf, best_confidence=False).to_pylist()
    assert {r["representative"] for r in t} == {a} and t[0]["cluster_size"] == 3


@pytest.mark.skipif(not (DATA / "cluster.tsv").exists(), reason="no recorded foldseek output in tests/data/foldseek")
def test_parsers_on_real_foldseek_output():
    pairs = parse_cluster_tsv(DATA / "cluster.tsv")
    assert pairs == sorted(pairs) and len({m for _, m in pairs}) == len(pairs)
    reps = {r for r, _ in pairs}
    assert all((r, r) in pairs for r in reps)  # foldseek lists each representative as its own member
    hits = parse_m8(DATA / "hits.m8", target_db="self")
    assert hits.schema.equals(HITS_SCHEMA)
    rows = hits.to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["query"], r["evalue"], -r["bits"], r["target"]))
    assert all(0 <= r["prob"] <= 1 and 0 <= r["alntmscore"] <= 1.1 for r in rows)  # foldseek reports alntmscore slightly above 1
    self_hits = [r for r in rows if r["target"].startswith(r["query"])]
    assert self_hits and all(r["fident"] == 1.0 for r in self_hits)


def _families(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    import random

    rng = random.Random(1)
    aa = "ACDEFGHIKLMNPQRSTVWY"
    family = {}
    seqs = []
    for f in range(5):
        base = "".join(rng.choice(aa) for _ in range(120))
        for v in range(4):
            s = "".join(c if rng.random() > 0.05 else rng.choice(aa) for c in base)  # ~95% identical
            family[sequence_checksum(s.encode())] = f
            seqs.append(s)
    path = tmp_path / "sequences.parquet"
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs}), path)
    return path, family


@pytest.mark.skipif(MMSEQS is None, reason="mmseqs not on PATH (apt-get install mmseqs2); .ci/run installs it")
def test_mmseqs_linclust_groups_families(tmp_path):
    path, family = _families(tmp_path)
    t = mmseqs_linclust(MMSEQS, path, tmp_path / "clusters.parquet", settings=MmseqsSettings.from_config({"min_seq_id": 0.3, "coverage": 0.8, "cov_mode": 1}), threads=2)
    assert pq.read_schema(tmp_path / "clusters.parquet").equals(SEQ_CLUSTERS_SCHEMA, check_metadata=False)
    rows = t.to_pylist()
    assert sorted(r["member"] for r in rows) == sorted(family)  # every sequence exactly once
    for r in rows:
        assert family[r["member"]] == family[r["representative"]]
    assert len({r["cluster_id"] for r in rows}) == 5


@pytest.mark.skipif(MMSEQS is None, reason="mmseqs not on PATH (apt-get install mmseqs2); .ci/run installs it")
def test_mmseqs_failure_is_reported_with_command(tmp_path):
    with pytest.raises(ToolError) as info:
        run_tool([MMSEQS, "easy-linclust", tmp_path / "missing.fasta", tmp_path / "out", tmp_path / "tmp"])
    assert info.value.returncode != 0 and "easy-linclust" in info.value.command


@pytest.mark.skipif(FOLDSEEK is None, reason="foldseek not on PATH (bioconda only; build it from source to run these)")
def test_foldseek_createdb_reads_the_shards_directly(tmp_path):
    from foldatlas.annotate import atlas_db
    from foldatlas.archive import ShardWriter
    from ideal import ideal_pdb

    writer = ShardWriter(tmp_path / "structures", "highconf", 3, archive_dir="structures")
    sums = [f"{k:032x}" for k in range(7)]
    for k, c in enumerate(sums):
        writer.add(c, {"pdb": ideal_pdb(40 + 5 * k, unknown=(3,)).encode(), "cif": b"data_not_read\n"})
    assert len(writer.close()) == 3
    db = atlas_db(FOLDSEEK, tmp_path / "structures", tmp_path / "db", threads=1)
    names = [line.split("\t")[1] for line in Path(f"{db}.lookup").read_text().splitlines()]
    assert sorted(names) == sums  # every PDB member of every shard, once; the ModelCIF members are not read
    lengths = sorted(int(line.split("\t")[2]) - 2 for line in Path(f"{db}.index").read_text().splitlines())  # sequence + newline + NUL
    assert lengths == [40 + 5 * k for k in range(7)]  # every residue, the unknown one included


@pytest.mark.skipif(FOLDSEEK is None, reason="foldseek not on PATH (bioconda only; build it from source to run these)")
@pytest.mark.workflow
def test_foldseek_rules_on_the_demo_atlas(tmp_path):
    from test_workflow import prepare, run

    extra = {
        "foldseek": {"enabled": True, "binary": FOLDSEEK, "threads": 2, "search": {"targets": ["resources/demo/targets"]}},
        "mmseqs": {"enabled": MMSEQS is not None, "threads": 2},
    }
    wd = prepare(tmp_path, extra)
    # search target: a folder of structures (the atlas's own archive is reused after the run)
    (wd / "resources/demo/targets").mkdir()
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", "--until", "assemble_atlas"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    shard = sorted((wd / "results/atlas/structures").glob("highconf_*.tar"))[0]
    subprocess.run(["tar", "xf", str(shard), "-C", str(wd / "resources/demo/targets"), "--wildcards", "*.pdb.gz"], check=True)
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    clusters = pq.read_table(wd / "results/foldseek/clusters.parquet")
    assert clusters.schema.equals(CLUSTERS_SCHEMA, check_metadata=False)
    meta = pq.read_table(wd / "results/atlas/metadata.parquet").to_pylist()
    hc = {r["checksum"] for r in meta if r["high_confidence"]}
    assert sorted(clusters["member"].to_pylist()) == sorted(hc)  # every high-confidence structure clustered once, from the .tar shards
    lookup = (wd / "results/foldseek/db/highconf.lookup").read_text().split("\n")
    assert sorted(line.split("\t")[1] for line in lookup if line) == sorted(hc)  # PDB members only (the shards hold ModelCIF too)
    conf = {r["checksum"]: (r["plddt"], r["ptm"]) for r in meta if r["status"] == "folded"}
    for r in clusters.to_pylist():
        assert (r["plddt"], r["ptm"]) == pytest.approx(conf[r["member"]])
    hits = pq.read_table(wd / "results/foldseek/hits.parquet").to_pylist()
    extracted = {p.name.removesuffix(".pdb.gz") for p in (wd / "resources/demo/targets").iterdir()}
    assert len(extracted) == len(list((wd / "resources/demo/targets").iterdir())) > 0
    assert {h["query"] for h in hits} >= extracted  # every structure finds itself
    if MMSEQS:
        assert pq.read_table(wd / "results/mmseqs/clusters.parquet").num_rows == pq.read_metadata(wd / "results/ingest/sequences.parquet").num_rows
