"""foldseek and mmseqs2 wrappers: command building, parsing, and runs of the real programs.

Parsers are tested on outputs the real foldseek wrote (tests/data/foldseek/, made with
foldseek built from source; row order as it came). Runs of the programs themselves skip,
with the reason, when the binary is not on PATH.
"""

from __future__ import annotations

import csv
import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from foldatlas.annotate import cluster_args, entry_checksum, linclust_args, mmseqs_linclust, parse_cluster_tsv, parse_m8
from foldatlas.duck import connect
from foldatlas.errors import ConfigError
from foldatlas.settings import FoldseekSettings, MmseqsSettings
from foldatlas.tables import CLUSTERS_SCHEMA, HITS_SCHEMA, SEARCH_COLUMNS, SEQ_CLUSTERS_SCHEMA
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
    cluster = {"coverage": 0.9, "cov_mode": 1, "evalue": 0.01, "alignment_type": 1, "tmscore_threshold": 0.5, "lddt_threshold": 0.3, "steps": 4, "shards": 7}
    assert cluster_args(FoldseekSettings.from_config({"cluster": cluster}).cluster) == [
        "-c", "0.9", "--cov-mode", "1", "-e", "0.01", "--alignment-type", "1", "--tmscore-threshold", "0.5", "--lddt-threshold", "0.3",
        "--cluster-steps", "4",
    ]  # fmt: skip


def test_linclust_defaults_are_the_atlas_clust30():
    assert linclust_args(MmseqsSettings.from_config({})) == [
        "--min-seq-id", "0.3", "-c", "0.8", "--cov-mode", "1", "--cluster-mode", "2", "--kmer-per-seq", "100",
    ]  # fmt: skip


def _old_parse_cluster_tsv(path):
    """The plain-Python parser the DuckDB one replaced (reference for the comparison)."""
    pairs = set()
    with open(path, newline="") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if row:
                pairs.add((entry_checksum(row[0]), entry_checksum(row[1])))
    return sorted(pairs)


def _old_parse_m8(path, target_db):
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            row = {"query": entry_checksum(r["query"]), "target_db": target_db, "target": r["target"]}
            for c in SEARCH_COLUMNS[2:]:
                row[c] = float(r[c]) if pa.types.is_floating(HITS_SCHEMA.field(c).type) else int(float(r[c]))
            rows.append(row)
    rows.sort(key=lambda r: (r["query"], r["evalue"], -r["bits"], r["target"]))
    return pa.Table.from_pylist(rows, schema=HITS_SCHEMA)


@pytest.mark.skipif(not (DATA / "cluster.tsv").exists(), reason="no recorded foldseek output in tests/data/foldseek")
def test_streaming_parsers_give_the_tables_of_the_python_parsers_on_real_foldseek_output():
    table = parse_cluster_tsv(DATA / "cluster.tsv")
    pairs = list(zip(table["representative"].to_pylist(), table["member"].to_pylist()))
    assert pairs == _old_parse_cluster_tsv(DATA / "cluster.tsv")
    assert len({m for _, m in pairs}) == len(pairs)
    assert all((r, r) in pairs for r, _ in pairs)  # foldseek lists each representative as its own member
    hits = parse_m8(DATA / "hits.m8", target_db="self")
    assert hits.schema.equals(HITS_SCHEMA) and hits.equals(_old_parse_m8(DATA / "hits.m8", "self"))
    rows = hits.to_pylist()
    assert all(0 <= r["prob"] <= 1 and 0 <= r["alntmscore"] <= 1.1 for r in rows)  # foldseek reports alntmscore slightly above 1
    self_hits = [r for r in rows if r["target"].startswith(r["query"])]
    assert self_hits and all(r["fident"] == 1.0 for r in self_hits)


def test_cluster_tsv_with_an_entry_that_is_no_checksum_names_it(tmp_path):
    bad = tmp_path / "clu.tsv"
    bad.write_text(f"{'a' * 32}\t{'a' * 32}\n{'a' * 32}\t../etc/passwd_A\n")
    with pytest.raises(ValueError, match=r"clu.tsv: expected entries named after a 32-digit checksum, found '../etc/passwd_A'"):
        parse_cluster_tsv(bad)


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
    n = mmseqs_linclust(MMSEQS, path, tmp_path / "clusters.parquet", settings=MmseqsSettings.from_config({}), threads=2, mem_mb=2000)
    assert pq.read_schema(tmp_path / "clusters.parquet").equals(SEQ_CLUSTERS_SCHEMA, check_metadata=False)
    rows = pq.read_table(tmp_path / "clusters.parquet").to_pylist()
    assert n == len(rows) and rows == sorted(rows, key=lambda r: (r["cluster_id"], r["member"]))
    assert sorted(r["member"] for r in rows) == sorted(family)  # every sequence exactly once
    for r in rows:
        assert family[r["member"]] == family[r["representative"]]
    assert len({r["cluster_id"] for r in rows}) == 5


@pytest.mark.skipif(MMSEQS is None, reason="mmseqs not on PATH (apt-get install mmseqs2); .ci/run installs it")
def test_mmseqs_linclust_gives_the_clusters_of_easy_linclust(tmp_path):
    """createdb, linclust and createtsv one by one (no FASTA outputs) cluster exactly as
    the ESM Atlas's easy-linclust command does, on sequences near its 30% threshold."""
    rng = random.Random(3)
    aa = "ACDEFGHIKLMNPQRSTVWY"
    seqs = []
    for _ in range(40):
        base = "".join(rng.choice(aa) for _ in range(rng.randint(60, 200)))
        for rate in (0.0, 0.3, 0.6, 0.75):
            seqs.append("".join(c if rng.random() > rate else rng.choice(aa) for c in base))
    seqs = list(dict.fromkeys(seqs))
    path = tmp_path / "sequences.parquet"
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs}), path)
    mmseqs_linclust(MMSEQS, path, tmp_path / "clusters.parquet", settings=MmseqsSettings.from_config({}), threads=2)
    ours = {(r["representative"], r["member"]) for r in pq.read_table(tmp_path / "clusters.parquet").to_pylist()}
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{sequence_checksum(s.encode())}\n{s}\n" for s in seqs))
    run_tool([MMSEQS, "easy-linclust", fasta, tmp_path / "easy", tmp_path / "tmp", *linclust_args(MmseqsSettings.from_config({})), "--threads", "2"])
    theirs = {tuple(line.split("\t")) for line in (tmp_path / "easy_cluster.tsv").read_text().splitlines()}
    assert ours == theirs and len(ours) == len(seqs)
    assert 40 <= len({r for r, _ in ours}) < len(seqs), "some sequences cluster, not all into one"


@pytest.mark.skipif(MMSEQS is None, reason="mmseqs not on PATH (apt-get install mmseqs2); .ci/run installs it")
def test_mmseqs_failure_is_reported_with_command(tmp_path):
    with pytest.raises(ToolError) as info:
        run_tool([MMSEQS, "easy-linclust", tmp_path / "missing.fasta", tmp_path / "out", tmp_path / "tmp"])
    assert info.value.returncode != 0 and "easy-linclust" in info.value.command


NEEDS_FOLDSEEK = pytest.mark.skipif(FOLDSEEK is None, reason="foldseek not on PATH (bioconda only; build it from source and put it on PATH to run these)")


def _shards(tmp_path: Path, n: int = 7) -> tuple[Path, list[str]]:
    """Three high-confidence shards of ``n`` ideal helices (40, 45, ... residues), each
    with a ModelCIF member foldseek must not read."""
    from foldatlas.archive import ShardWriter
    from ideal import ideal_pdb

    writer = ShardWriter(tmp_path / "structures" / "all", "highconf", 3, archive_dir="structures/all")  # one bucket's folder
    sums = [f"{k:032x}" for k in range(n)]
    for k, c in enumerate(sums):
        writer.add(c, {"pdb": ideal_pdb(40 + 5 * k, unknown=(3,)).encode(), "cif": b"data_not_read\n"})
    assert len(writer.close()) == 3
    return tmp_path / "structures", sums


@NEEDS_FOLDSEEK
def test_foldseek_createdb_makes_one_database_per_shard(tmp_path):
    from foldatlas.annotate import bucket_db
    from foldatlas.dbfiles import db_size, read_lookup

    structures, sums = _shards(tmp_path)
    dbs = bucket_db(FOLDSEEK, structures / "all", tmp_path / "db", threads=1)
    assert [d.parent.name for d in dbs] == ["highconf_000000", "highconf_000001", "highconf_000002"]
    names = [n for d in dbs for n in read_lookup(d)]
    assert sorted(names) == sums  # every PDB member of every shard, once; the ModelCIF members are not read
    lengths = sorted(int(line.split("\t")[2]) - 2 for d in dbs for line in Path(f"{d}.index").read_text().splitlines())
    assert lengths == [40 + 5 * k for k in range(7)]  # every residue, the unknown one included
    assert sum(db_size(d).residues for d in dbs) == sum(lengths) and sum(db_size(d).entries for d in dbs) == 7


@NEEDS_FOLDSEEK
def test_foldseek_databases_without_copies_equal_those_of_the_copied_shards(tmp_path):
    """indexed_bucket_db (atlas.copy_structures: false) reads the high-confidence
    structures from the fold archives through temporary shards: the same databases,
    byte for byte, as bucket_db over the copied shards, and no shard left behind."""
    from test_atlas import make_chunk, run as assemble, write_ingest, SEQS

    from foldatlas.annotate import bucket_db, indexed_bucket_db

    chunks = [make_chunk(tmp_path / "fold", 0, SEQS[:5]), make_chunk(tmp_path / "fold", 1, SEQS[5:])]
    write_ingest(tmp_path, SEQS, [0] * 5 + [1] * 5)
    out, _ = assemble(tmp_path, chunks, all_structures=True)
    copied = bucket_db(FOLDSEEK, out.shards("all"), tmp_path / "copied", threads=1)
    out, _ = assemble(tmp_path, chunks, all_structures=True, copy_structures=False)
    assert not list(out.structures.rglob("*.tar"))
    made = indexed_bucket_db(FOLDSEEK, out.part(out.index, "all"), out.root, tmp_path / "indexed", threads=1, shard_size=3)
    assert [d.relative_to(tmp_path / "indexed") for d in made] == [d.relative_to(tmp_path / "copied") for d in copied] and len(made) == 2
    for a, b in zip(copied, made):
        for suffix in ("", "_ss", "_ca", "_h", ".lookup", ".index"):
            assert Path(f"{a}{suffix}").read_bytes() == Path(f"{b}{suffix}").read_bytes(), suffix
    assert not list((tmp_path / "indexed").rglob("*.tar"))


@NEEDS_FOLDSEEK
def test_foldseek_makes_one_database_per_bin_of_a_bucket(tmp_path):
    """bins_db (atlas.bins): one database per bin of a bucket's bin shards, holding that
    bin's structures (their PDB members) and nothing else."""
    from test_bins import _atlas

    from foldatlas.annotate import bins_db
    from foldatlas.dbfiles import read_lookup

    out, _ = _atlas(tmp_path, "copies", all_structures=True)
    rows = pq.read_table(out.bins_index).to_pylist()
    bucket = max({r["archive"].split("/")[1] for r in rows}, key=lambda b: len({r["collection"] for r in rows if r["archive"].split("/")[1] == b}))
    mine = [r for r in rows if r["archive"].split("/")[1] == bucket]
    dbs = bins_db(FOLDSEEK, out.bin_shards(bucket), tmp_path / "db", threads=1)
    assert [d.name for d in dbs] == sorted({r["collection"] for r in mine}) and all(d.parent.name == d.name for d in dbs)
    for d in dbs:
        assert sorted(read_lookup(d)) == sorted(r["checksum"] for r in mine if r["collection"] == d.name)
    assert not list((tmp_path / "db").rglob("*.ignored"))  # foldseek took every chain


def _atlas_tables(tmp_path: Path, sums: list[str]) -> tuple[Path, Path, dict[str, str]]:
    """metadata.parquet and mmseqs clusters.parquet for 7 structures plus one low-confidence
    sequence: sequence clusters {0,1,2,7}, {3,4}, {5}, {6}; 3 and 4 tie on pTM x pLDDT."""
    low = "f" * 32
    conf = {sums[0]: (0.80, 0.80), sums[1]: (0.90, 0.75), sums[2]: (0.95, 0.90), low: (0.99, 0.50),
            sums[3]: (0.80, 0.90), sums[4]: (0.90, 0.80), sums[5]: (0.75, 0.75), sums[6]: (0.72, 0.95)}  # fmt: skip
    rows = [{"checksum": c, "plddt": pl, "ptm": pt, "is_duplicate": False, "status": "folded", "high_confidence": c != low} for c, (pl, pt) in conf.items()]
    rows.append({**rows[0], "is_duplicate": True})  # a duplicate record of sums[0]: one row all the same
    meta = tmp_path / "metadata.parquet"
    pq.write_table(pa.Table.from_pylist(rows), meta)
    seq_rep = {sums[0]: low, sums[1]: low, sums[2]: low, low: low, sums[3]: sums[4], sums[4]: sums[4], sums[5]: sums[5], sums[6]: sums[6]}
    ids = {r: k for k, r in enumerate(sorted(set(seq_rep.values())))}
    seq = tmp_path / "seq_clusters.parquet"
    pq.write_table(pa.Table.from_pylist([{"cluster_id": ids[r], "representative": r, "member": m, "cluster_size": 0} for m, r in seq_rep.items()], SEQ_CLUSTERS_SCHEMA), seq)
    return meta, seq, seq_rep


def test_representatives_are_the_best_ptm_x_plddt_structure_of_each_sequence_cluster(tmp_path):
    from foldatlas.clustering import representatives

    sums = [f"{k:032x}" for k in range(7)]
    meta, seq, seq_rep = _atlas_tables(tmp_path, sums)
    con = connect()
    assert representatives(con, meta, seq) == 7  # high-confidence structures, each once
    rows = {m: (r, s, n) for m, r, s, n in con.execute("SELECT member, representative, seq_representative, seq_cluster_structures FROM hc").fetchall()}
    # {0,1,2}: 2 has the best pTM x pLDDT (the low-confidence 7 is never a representative, though mmseqs chose it)
    assert {m: r for m, (r, _, _) in rows.items()} == {sums[0]: sums[2], sums[1]: sums[2], sums[2]: sums[2], sums[3]: sums[3], sums[4]: sums[3], sums[5]: sums[5], sums[6]: sums[6]}
    assert all(s == seq_rep[m] for m, (_, s, _) in rows.items())  # 3 and 4 tie (0.72): the smaller checksum, 3, wins
    assert rows[sums[0]][2] == 3 and rows[sums[3]][2] == 2 and rows[sums[6]][2] == 1
    con = connect()  # without mmseqs, every structure is its own sequence cluster
    representatives(con, meta, None)
    assert con.execute("SELECT count(*) FROM hc WHERE member = representative AND seq_cluster_id IS NULL").fetchone()[0] == 7


@NEEDS_FOLDSEEK
def test_foldseek_cluster_checks_the_prefilter_floor_of_its_representatives_first(tmp_path):
    """A request below what the prefilter needs for the representatives stops the job
    with the request it needs, before foldseek runs and before any output is written."""
    from foldatlas.annotate import bucket_db
    from foldatlas.clustering import select_representatives, structural_clusters
    from foldatlas.errors import ConfigError

    structures, sums = _shards(tmp_path)
    bucket_db(FOLDSEEK, structures / "all", tmp_path / "db", threads=1)
    meta, seq, _ = _atlas_tables(tmp_path, sums)
    select_representatives(tmp_path / "db", tmp_path / "reps", metadata=meta, seq_clusters=seq, threads=1)
    out = tmp_path / "clusters.parquet"
    with pytest.raises(ConfigError, match=r"foldseek.max_mem_mb: expected at least 18\d\d MB, which foldseek's prefilter needs to start on 4 structures"):
        structural_clusters(FOLDSEEK, tmp_path / "reps", out, settings=FoldseekSettings.from_config({}), threads=1, mem_mb=1500)
    assert not out.exists()


@NEEDS_FOLDSEEK
def test_foldseek_clusters_only_the_representatives_and_every_structure_gets_one_row(tmp_path):
    from foldatlas.annotate import bucket_db
    from foldatlas.clustering import representatives_db, select_representatives, structural_clusters
    from foldatlas.dbfiles import read_lookup

    structures, sums = _shards(tmp_path)
    bucket_db(FOLDSEEK, structures / "all", tmp_path / "db", threads=1)
    meta, seq, _ = _atlas_tables(tmp_path, sums)
    assert select_representatives(tmp_path / "db", tmp_path / "reps", metadata=meta, seq_clusters=seq, threads=1) == 4
    assert sorted(read_lookup(representatives_db(tmp_path / "reps"))) == [sums[2], sums[3], sums[5], sums[6]]  # what foldseek clusters
    table = pq.read_table(tmp_path / "reps" / "representatives.parquet").to_pylist()  # every high-confidence structure, its representative
    assert [r["member"] for r in table] == sums and {r["representative"] for r in table} == {sums[2], sums[3], sums[5], sums[6]}
    out = tmp_path / "clusters.parquet"
    n = structural_clusters(FOLDSEEK, tmp_path / "reps", out, settings=FoldseekSettings.from_config({}), threads=1, mem_mb=2000)
    t = pq.read_table(out)
    assert t.schema.equals(CLUSTERS_SCHEMA, check_metadata=False) and n == t.num_rows == 7
    rows = t.to_pylist()
    assert sorted(r["member"] for r in rows) == sums  # every high-confidence structure once
    assert rows == sorted(rows, key=lambda r: (r["cluster_id"], r["representative"], r["member"]))
    reps = {r["representative"]: r for r in rows if r["is_representative"]}
    assert sorted(reps) == [sums[2], sums[3], sums[5], sums[6]]
    assert sum({r["cluster_id"]: r["cluster_size"] for r in rows}.values()) == 4  # foldseek's entries: the representatives only
    for r in rows:  # a member's structural cluster is its representative's
        assert (r["cluster_id"], r["cluster_representative"]) == (reps[r["representative"]]["cluster_id"], reps[r["representative"]]["cluster_representative"])
        assert r["cluster_representative"] in reps
    by_cluster = {}
    for r in rows:
        by_cluster.setdefault(r["cluster_id"], []).append(r)
    for members in by_cluster.values():  # best_confidence: the best representative of the cluster represents it
        best = min((m for m in members if m["is_representative"]), key=lambda m: (-m["ptm"] * m["plddt"], m["member"]))
        assert {m["cluster_representative"] for m in members} == {best["member"]} and members[0]["cluster_structures"] == len(members)
    structural_clusters(FOLDSEEK, tmp_path / "reps", out, settings=FoldseekSettings.from_config({"representative": "foldseek"}), threads=1)
    again = pq.read_table(out).to_pylist()  # foldseek's own choice: still one of the representatives, same members
    assert sorted(r["member"] for r in again) == sums and {r["cluster_representative"] for r in again} <= set(reps)


@pytest.mark.skipif(FOLDSEEK is None, reason="foldseek not on PATH (bioconda only; build it from source to run these)")
@pytest.mark.workflow
def test_foldseek_rules_on_the_demo_atlas(tmp_path):
    from test_workflow import prepare, run

    extra = {
        "foldseek": {"enabled": True, "binary": FOLDSEEK, "threads": 2, "search": {"targets": ["resources/demo/targets"]}},
        "mmseqs": {"enabled": MMSEQS is not None, "threads": 2},
        "atlas": {"bucket_digits": 1},  # 16 buckets: one createdb and one search job each
    }
    wd = prepare(tmp_path, extra)
    # search target: a folder of structures (the atlas's own archive is reused after the run)
    (wd / "resources/demo/targets").mkdir()
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", "--until", "assemble_atlas"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    shard = sorted((wd / "results/atlas/structures").glob("*/highconf_*.tar"))[0]
    subprocess.run(["tar", "xf", str(shard), "-C", str(wd / "resources/demo/targets"), "--wildcards", "*.pdb.gz"], check=True)
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    clusters = pq.read_table(wd / "results/foldseek/clusters.parquet")
    assert clusters.schema.equals(CLUSTERS_SCHEMA, check_metadata=False)
    meta = pq.read_table(wd / "results/atlas/metadata.parquet").to_pylist()
    hc = {r["checksum"] for r in meta if r["high_confidence"]}
    assert sorted(clusters["member"].to_pylist()) == sorted(hc)  # every high-confidence structure clustered once, from the .tar shards
    lookups = sorted((wd / "results/foldseek/db").glob("*/highconf_*/highconf.lookup"))  # one database per shard, in its bucket's folder
    assert len(lookups) == len(list((wd / "results/atlas/structures").glob("*/highconf_*.tar")))
    names = [line.split("\t")[1] for p in lookups for line in p.read_text().splitlines()]
    assert sorted(names) == sorted(hc)  # PDB members only (the shards hold ModelCIF too)
    conf = {r["checksum"]: (r["plddt"], r["ptm"]) for r in meta if r["status"] == "folded"}
    rows = clusters.to_pylist()
    for r in rows:
        assert (r["plddt"], r["ptm"]) == pytest.approx(conf[r["member"]])
    if MMSEQS:  # each sequence cluster's representative: its best pTM x pLDDT structure
        seq = {r["member"]: r["representative"] for r in pq.read_table(wd / "results/mmseqs/clusters.parquet").to_pylist()}
        for r in rows:
            assert r["seq_representative"] == seq[r["member"]]
            same = [x for x in rows if seq[x["member"]] == seq[r["member"]]]
            assert r["representative"] == min(same, key=lambda x: (-x["ptm"] * x["plddt"], x["member"]))["member"]
    hits = pq.read_table(wd / "results/foldseek/hits.parquet").to_pylist()
    extracted = {p.name.removesuffix(".pdb.gz") for p in (wd / "resources/demo/targets").iterdir()}
    assert len(extracted) == len(list((wd / "resources/demo/targets").iterdir())) > 0
    assert {h["query"] for h in hits} >= extracted  # every structure finds itself
    if MMSEQS:
        assert pq.read_table(wd / "results/mmseqs/clusters.parquet").num_rows == pq.read_metadata(wd / "results/ingest/sequences.parquet").num_rows
    buckets = [f"{b:x}" for b in range(16)]
    assert sorted(p.name for p in (wd / "results/foldseek/db").iterdir()) == buckets
    assert sorted(p.name for p in (wd / "results/foldseek/hits.parquet").iterdir()) == [f"{b}.parquet" for b in buckets]
    assert list((wd / "results/scratch").glob("foldseek_search/*")) == []  # each search removed its working files
    for b in buckets:  # each bucket's databases hold its own structures, and its hits are its own queries'
        names = [line.split("\t")[1] for p in (wd / "results/foldseek/db" / b).glob("*/highconf.lookup") for line in p.read_text().splitlines()]
        assert sorted(names) == sorted(c for c in hc if c.startswith(b))
        assert all(q.startswith(b) for q in pq.read_table(wd / f"results/foldseek/hits.parquet/{b}.parquet")["query"].to_pylist())
    assert len(list((wd / "results/logs/foldseek_target_db").iterdir())) == 1  # the target made a database once, for every bucket
    # atlas.bins (on in the demo): one database per bin of each bucket, holding that bin's structures of the bucket
    bins = pq.read_table(wd / "results/atlas/bins/index.parquet").to_pylist()
    assert sorted(p.name for p in (wd / "results/foldseek/bins").iterdir()) == buckets and len({r["collection"] for r in bins}) > 1
    ignored = set()
    for b in buckets:  # what createdb leaves out (a chain of unknown residues only) is listed beside the database
        dbs = {p.parent.name: sorted(line.split("\t")[1] for line in p.read_text().splitlines()) for p in (wd / "results/foldseek/bins" / b).glob("*/*.lookup")}
        for p in (wd / "results/foldseek/bins" / b).glob("*/*.ignored"):
            ignored |= set(p.read_text().split())
            dbs[p.parent.name] = sorted(dbs[p.parent.name] + p.read_text().split())
        want: dict[str, list[str]] = {}
        for r in bins:
            if r["checksum"].startswith(b):
                want.setdefault(r["collection"], []).append(r["checksum"])
        assert dbs == {k: sorted(v) for k, v in want.items()}, b
    seqs = dict(zip(*pq.read_table(wd / "results/ingest/sequences.parquet", columns=["checksum", "sequence"]).to_pydict().values()))
    assert ignored and all(set(seqs[c]) <= set("XBZUO") for c in ignored)  # the demo's all-X chain, only

    # a finish that changes no bucket's files (the report or the bins switched off) makes no annotation job again
    (wd / "off.yaml").write_text(yaml.safe_dump({"atlas": {"report": False, "bins": False}}))
    dry = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml", "off.yaml", "-n", "--quiet", "rules"], wd, timeout=300)
    planned = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", dry.stdout + dry.stderr, re.M)}
    assert dry.returncode == 0 and "assemble_atlas" in planned and "check_bucket" in planned, dry.stdout + dry.stderr
    assert not {j for j in planned if j.startswith(("foldseek", "mmseqs"))}, planned

    # the structural clustering as a cascade of jobs (foldseek.cluster.shards): the same
    # clusters, and the representatives are not selected again
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["foldseek"]["cluster"] = {"shards": 2}
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    def stamps(rule):
        return sorted((p.name, p.stat().st_mtime_ns) for p in (wd / "results/benchmarks").glob(f"{rule}*"))

    selected, searched = stamps("foldseek_representatives"), stamps("foldseek_search/")
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    # in this first run after the change (0.13 missed it there), and nothing but the clustering
    assert selected and searched and stamps("foldseek_representatives") == selected and stamps("foldseek_search/") == searched
    assert sorted(p.name for p in (wd / "results/benchmarks/foldseek_cluster_search").iterdir()) == [f"{r}_{k}.tsv" for r in range(3) for k in range(2)]
    assert pq.read_table(wd / "results/foldseek/clusters.parquet").to_pylist() == rows  # row for row
    assert list((wd / "results/scratch").glob("foldseek_cluster_*/*")) == []

    # the same atlas unsplit: the other split's databases and hits files are gone, and the results are the same
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["atlas"]["bucket_digits"] = 0
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    # and foldatlas 0.8's files: hits.parquet one file, one database folder per shard
    shutil.rmtree(wd / "results/foldseek/hits.parquet")
    pq.write_table(HITS_SCHEMA.empty_table(), wd / "results/foldseek/hits.parquet")
    (wd / "results/foldseek/db/all_highconf_000000").mkdir()
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in (wd / "results/foldseek/db").iterdir()] == ["all"]
    assert [p.name for p in (wd / "results/foldseek/bins").iterdir()] == ["all"]
    assert [p.name for p in (wd / "results/foldseek/hits.parquet").iterdir()] == ["all.parquet"]
    again = pq.read_table(wd / "results/foldseek/hits.parquet").to_pylist()
    assert sorted((h["query"], h["target"]) for h in again) == sorted((h["query"], h["target"]) for h in hits)
    unsplit = pq.read_table(wd / "results/foldseek/clusters.parquet").to_pylist()
    assert sorted((r["member"], r["representative"]) for r in unsplit) == sorted((r["member"], r["representative"]) for r in rows)

    # and without copies: the databases are made from the store's fold archives, the same clusters
    cfg["atlas"]["copy_structures"] = False
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run(["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"], wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not list((wd / "results/atlas/structures").rglob("*.tar"))
    names = [line.split("\t")[1] for p in (wd / "results/foldseek/db").glob("*/*/highconf.lookup") for line in p.read_text().splitlines()]
    assert sorted(names) == sorted(hc)
    indexed = pq.read_table(wd / "results/foldseek/clusters.parquet").to_pylist()
    assert sorted((r["member"], r["representative"]) for r in indexed) == sorted((r["member"], r["representative"]) for r in rows)


def test_resource_formula_follows_the_documented_bytes_and_caps():
    from foldatlas.sizing import InputSize, mem_mb, runtime_min, split_memory_limit

    size = InputSize(sequences=1_000_000, residues=250_000_000)
    # mmseqs: 16 B x 100 k-mers per sequence + 1 B per residue, 25% headroom, 1 GB base
    assert mem_mb("mmseqs_cluster", size, attempt=1, max_mem_mb=10**6, kmer_per_seq=100) == 1000 + 2313
    assert mem_mb("mmseqs_cluster", size, attempt=2, max_mem_mb=10**6, kmer_per_seq=100) == 2 * 3313
    # foldseek: 8 B per residue held + the prefilter's 7 B per residue, 2 x 8 x 20^6 B and 42 B per sequence (+ the k-mer table in cluster)
    fixed = 2 * 8 * 20**6 * 1.25 / 1e6 + 42 * 1.25
    assert mem_mb("foldseek_search", size, attempt=1, max_mem_mb=10**6) == math.ceil(1000 + fixed + 4687.5)
    assert mem_mb("foldseek_cluster", size, attempt=1, max_mem_mb=10**6, kmer_per_seq=300) == math.ceil(1000 + fixed + 4687.5 + 6000)
    assert mem_mb("foldseek_cluster", InputSize(1, 100), attempt=1, max_mem_mb=10**6, kmer_per_seq=300) > 2200  # never below the fixed arrays
    # the cap (1.2x10^8 sequences: the k-mer table is split into passes, the 95 B a sequence fit)
    assert mem_mb("mmseqs_cluster", InputSize(1.2 * 10**8, 3 * 10**10), attempt=3, max_mem_mb=16000, kmer_per_seq=100) == 16000
    # the split limit is in MiB, as mmseqs and foldseek read "M": 80% of the request less 200 MB
    assert split_memory_limit(16000) == "12016M" and split_memory_limit(2000) == "1335M" and split_memory_limit(300) == "100M"
    one, four = (runtime_min("foldseek_cluster", size, threads=t, attempt=1) for t in (1, 4))
    assert one > four >= 10 and runtime_min("foldseek_cluster", size, threads=4, attempt=2) == 2 * four
    # a cascade's search job: its share of the cluster's work
    quarter = runtime_min("foldseek_cluster_search", size, threads=1, attempt=1, share=0.25)
    assert one > 40 and abs(quarter - (10 + (one - 10) / 4)) <= 1
    # beyond the 2x10^5 structures its rate was measured at, cluster's time grows as N^1.32
    big = InputSize(sequences=200_000_000, residues=250 * 200_000_000)
    linear = 3 * big.residues / (1.5e4 * 4) / 60
    assert runtime_min("foldseek_cluster", big, threads=4, attempt=1) == math.ceil(10 + linear * 1000**0.32)
    with pytest.raises(ValueError, match="expected one of"):
        mem_mb("foldseek_nothing", size, attempt=1, max_mem_mb=1000)


def test_foldseek_gets_a_split_limit_its_prefilter_starts_with_at_atlas_scale():
    """The Atlas's 3.6x10^7 clust30 representatives (9x10^9 residues, 72 GB of
    database) under the 16 GB cap: the split limit leaves the database aside (page
    cache) and is above what the prefilter refuses to start below; a cap under that
    floor is refused before any job runs, naming the key."""
    from foldatlas.errors import ConfigError
    from foldatlas.sizing import InputSize, check_prefilter_floor, mem_mb, prefilter_floor_mb, split_memory_limit

    atlas = InputSize(sequences=36_000_000, residues=9 * 10**9)
    ask = mem_mb("foldseek_cluster", atlas, attempt=1, max_mem_mb=16000, kmer_per_seq=300)
    split_mb = int(split_memory_limit(ask)[:-1]) * 2**20 / 1e6
    assert ask == 16000 and split_mb > prefilter_floor_mb(atlas) > 3000
    small = InputSize(sequences=200_000, residues=37_750_450)  # bench/RESULTS.md: started at 1150M, not at 1100M
    assert 1100 * 2**20 / 1e6 < prefilter_floor_mb(small) < 1.1 * 1150 * 2**20 / 1e6  # above the refusal, near the start
    floor = mem_mb("foldseek_search", small, attempt=1, max_mem_mb=16000)
    assert int(split_memory_limit(floor)[:-1]) * 2**20 / 1e6 >= prefilter_floor_mb(small)
    with pytest.raises(ConfigError, match=r"foldseek.max_mem_mb: expected at least \d+ MB.*found 1500"):
        mem_mb("foldseek_search", small, attempt=1, max_mem_mb=1500)  # a search's targets are exact
    # a cluster and a cascade's search job are sized by the representatives' database, exact
    # (before 0.14 by every high-confidence chain, an upper bound: capped): refused as well
    for kind in ("foldseek_cluster", "foldseek_cluster_search"):
        with pytest.raises(ConfigError, match=r"foldseek.max_mem_mb: expected at least 18\d{3} MB.*256000000 structures.*found 16000"):
            mem_mb(kind, InputSize(256_000_000, 6.4 * 10**10), attempt=1, max_mem_mb=16000, kmer_per_seq=300)
    assert mem_mb("foldseek_cluster_search", atlas, attempt=1, max_mem_mb=16000) == 16000
    assert mem_mb("foldseek_cluster_round", atlas, attempt=1, max_mem_mb=16000) == 1000 + math.ceil(1.25 * 250 * 36_000_000 / 1e6)  # clust: 250 B a structure
    check_prefilter_floor(atlas, 16000)  # the job's own check (the one-job cluster)
    with pytest.raises(ConfigError, match=r"foldseek.max_mem_mb: expected at least \d+ MB.*3600000 structures"):
        check_prefilter_floor(InputSize(3_600_000, 9 * 10**8), 2000)


def test_job_sizes_come_from_the_inputs_and_wait_for_missing_ones(tmp_path):
    from foldatlas.sizing import job_size

    seqs = ["M" + "ACDEFGHIKL" * (3 + k % 40) for k in range(5000)]
    path = tmp_path / "sequences.parquet"
    pq.write_table(pa.table({"checksum": [f"{k:032x}" for k in range(5000)], "sequence": seqs}), path, row_group_size=1000)
    size = job_size("mmseqs_cluster", path)
    assert size.sequences == 5000 and size.residues == sum(map(len, seqs))
    with pytest.raises(FileNotFoundError) as info:  # Snakemake sizes the job once its input exists
        job_size("foldseek_cluster", tmp_path / "db")
    assert info.value.filename == str(tmp_path / "db")


def _fake_db(prefix: Path, lengths: list[int]) -> None:
    """A foldseek amino-acid database's files as foldatlas.dbfiles reads them: each entry
    is its residues, a newline and a NUL byte."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data, index, offset = b"", [], 0
    for key, n in enumerate(lengths):
        entry = b"A" * n + b"\n\0"
        index.append(f"{key}\t{offset}\t{len(entry)}\n")
        data, offset = data + entry, offset + len(entry)
    prefix.write_bytes(data)
    Path(f"{prefix}.index").write_text("".join(index))
    Path(f"{prefix}.dbtype").write_bytes(b"\0\0\0\0")


def test_a_job_over_every_bucket_is_sized_by_all_of_them_and_a_bucket_job_by_its_own(tmp_path):
    from foldatlas.annotate import shard_dbs
    from foldatlas.sizing import InputSize, job_size

    buckets = {"0": [[40, 50], [60]], "1": [[70]], "f": []}  # shards of each bucket's databases
    for bucket, shards in buckets.items():
        (tmp_path / "db" / bucket).mkdir(parents=True)
        for k, lengths in enumerate(shards):
            _fake_db(tmp_path / "db" / bucket / f"highconf_{k:06d}" / "highconf", lengths)
    folders = [tmp_path / "db" / b for b in buckets]
    assert [p.relative_to(tmp_path / "db").parts[:2] for p in shard_dbs(folders)] == [("0", "highconf_000000"), ("0", "highconf_000001"), ("1", "highconf_000000")]
    assert job_size("foldseek_representatives", folders) == InputSize(4, 220)  # foldseek_representatives: every bucket
    assert job_size("foldseek_representatives", folders[0]) == InputSize(3, 150)  # a search job's runtime: its bucket
    assert job_size("foldseek_representatives", folders[2]) == InputSize(0, 0)  # a bucket without high-confidence structures
    # the clustering's jobs: the representatives' database only, exact (none: an empty atlas)
    _fake_db(tmp_path / "reps" / "representatives", [25, 35])
    (tmp_path / "none").mkdir()
    for kind in ("foldseek_cluster", "foldseek_cluster_linclust", "foldseek_cluster_search", "foldseek_cluster_round"):
        assert job_size(kind, tmp_path / "reps") == InputSize(2, 60) and job_size(kind, tmp_path / "none") == InputSize(0, 0)
    assert job_size("foldseek_cluster", tmp_path / "db") == InputSize(0, 0)  # shard databases are not the clustering's input
    # a cascade round's clust: its searches' alignment hits (46 bytes a hit), once they exist
    from foldatlas.sizing import alignment_hits, mem_mb

    with pytest.raises(FileNotFoundError):
        alignment_hits([tmp_path / "search_0"])
    (tmp_path / "search_0").mkdir()
    (tmp_path / "search_0" / "aln.0").write_bytes(b"x" * 45_000_000)
    (tmp_path / "search_0" / "aln.index").write_bytes(b"x" * 9_000_000)  # not hits
    assert alignment_hits([tmp_path / "search_0"]) == 1_000_000
    assert mem_mb("foldseek_cluster_round", InputSize(0, 0), attempt=1, max_mem_mb=64000, hits=10**9) == 1000 + math.ceil(1.25 * 16e9 / 1e6)
    # a search is sized by its targets: a database by its index, also the one made of a
    # target that is structures (exact, where the structures' bytes / 100 are a guess)
    made = tmp_path / "targets" / "0" / "db" / "db"
    with pytest.raises(FileNotFoundError) as info:  # not made yet: sized once it is
        job_size("foldseek_search", folders[0], targets=[str(made)])
    assert info.value.filename == str(made)
    _fake_db(made, [120, 80])
    _fake_db(tmp_path / "pdb" / "pdb", [30])
    # searched one at a time: the largest target's entries and residues, not their sum
    assert job_size("foldseek_search", folders[0], targets=[str(made), str(tmp_path / "pdb" / "pdb")]) == InputSize(2, 200)
    # a bucket's bin shards (foldseek_bins_db): every shard, whatever its bin's name
    (tmp_path / "bins").mkdir()
    (tmp_path / "bins" / "tm_.70_.80_plddt_.80_.90_000000.tar").write_bytes(b"x" * 10**6)
    assert job_size("foldseek_bins_db", tmp_path / "bins").residues > 0
    with pytest.raises(FileNotFoundError) as info:  # one bucket not made yet: the job waits for it
        job_size("foldseek_cluster", [*folders, tmp_path / "db" / "e"])
    assert info.value.filename == str(tmp_path / "db" / "e")


def test_a_search_works_in_its_scratch_folder_and_empties_what_a_killed_search_left(tmp_path):
    from foldatlas.annotate import foldseek_search

    scratch = tmp_path / "scratch" / "foldseek_search" / "0"
    (scratch / "foldseek-search-killed").mkdir(parents=True)
    (scratch / "foldseek-search-killed" / "hits.duckdb").write_text("x")
    out = tmp_path / "hits.parquet" / "0.parquet"
    search = FoldseekSettings.from_config({"search": {"targets": ["pdb"]}}).search
    # a bucket without high-confidence shards: no database to search, an empty table
    assert foldseek_search("no-such-foldseek", [tmp_path / "db" / "0"], out, search=search, threads=1, scratch_dir=scratch) == 0
    assert pq.read_table(out).schema.equals(HITS_SCHEMA)
    assert list(scratch.iterdir()) == []  # the killed search's files are gone
    assert [p.name for p in out.parent.iterdir()] == ["0.parquet"]  # nothing beside the hits for readers to trip on


def test_another_bucket_splits_files_are_removed_and_this_splits_are_kept(tmp_path):
    from foldatlas.annotate import remove_other_buckets

    hits = tmp_path / "hits.parquet"
    hits.mkdir()
    for name in ("all.parquet", "0.parquet", "1.parquet", "00.parquet", ".0.parquet.tmp-12", "0", ".all.parquet.tmp-3"):
        (hits / name).write_text("x")
    (hits / ".tmp-abc").mkdir()  # hidden names (a write in progress) stay, but for another split's killed writes
    gone = remove_other_buckets(hits, ["0", "1", "2"], suffix=".parquet")
    assert sorted(p.name for p in gone) == [".all.parquet.tmp-3", "0", "00.parquet", "all.parquet"]
    assert sorted(p.name for p in hits.iterdir()) == [".0.parquet.tmp-12", ".tmp-abc", "0.parquet", "1.parquet"]
    db = tmp_path / "db"
    for name in ("all", "all_highconf_000000", "0"):  # another split's bucket, 0.8's shard databases, this split's
        (db / name / "highconf_000000").mkdir(parents=True)
    assert sorted(p.name for p in remove_other_buckets(db, ["0", "1"])) == ["all", "all_highconf_000000"]
    assert [p.name for p in db.iterdir()] == ["0"]
    assert remove_other_buckets(tmp_path / "none", ["0"]) == []  # nothing made yet
