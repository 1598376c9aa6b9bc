"""Structural and sequence annotation: foldseek clustering and search, mmseqs2 clustering.

Every program runs through :func:`foldatlas.tools.run_tool` (argument lists, recorded
command, exit code and stderr), and is looked for with :func:`tool_binary` where it
runs: at the start of a local run on the host (``onstart``), and in every rule's own
environment (so ``--sdm conda`` works and a missing program fails the rule clearly).
foldseek's row order varies between identical runs, so every table is sorted before it
is written. ``foldseek createdb`` reads the atlas's ``.tar`` shards directly, their PDB
members only (``--file-include``); entry names are mapped back to sequence checksums
(foldseek names an entry after its member, ``<checksum>.pdb.gz``, plus a chain suffix).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import HIGHCONF, foldseek_db_prefix, shard_glob
from .settings import FoldseekClusterSettings, FoldseekSearchSettings, FoldseekSettings, MmseqsSettings
from .status import Status
from .tables import CLUSTERS_SCHEMA, HITS_SCHEMA, SEARCH_COLUMNS, SEQ_CLUSTERS_SCHEMA, write_table
from .tools import find_binary, run_tool

__all__ = [
    "TOOLS",
    "tool_binary",
    "entry_checksum",
    "parse_cluster_tsv",
    "parse_m8",
    "foldseek_createdb",
    "foldseek_cluster",
    "foldseek_search",
    "mmseqs_linclust",
    "clusters_table",
    "shard_list",
    "atlas_db",
    "empty_output",
    "cluster_args",
]

log = logging.getLogger("foldatlas.annotate")

_CHECKSUM = re.compile(r"^([0-9a-f]{32})(?:\.pdb|\.cif)?(?:\.gz)?(?:_[A-Za-z0-9]+)?$")
#: foldseek createdb reads only the PDB members of a shard (a shard may hold ModelCIF too).
PDB_MEMBERS = r"\.pdb\.gz$"

#: External programs by config section, with how to install each.
TOOLS = {
    "foldseek": "Install it from bioconda (conda install -c bioconda foldseek, or run with --sdm conda: envs/foldseek.yaml), or set foldseek.enabled: false.",
    "mmseqs": "Install it (apt-get install mmseqs2, or conda install -c bioconda mmseqs2, or run with --sdm conda), or set mmseqs.enabled: false.",
}


def tool_binary(tool: str, binary: str) -> str:
    """Path of ``binary`` (the ``<tool>.binary`` setting) where this runs, or a
    :class:`~foldatlas.errors.ConfigError` saying how to install it."""
    return find_binary(binary, key=f"{tool}.binary", install=TOOLS[tool])


def cluster_args(params: FoldseekClusterSettings) -> list[str]:
    """``foldseek cluster`` options of the ``foldseek.cluster`` section."""
    return [
        "-c", str(params.coverage), "--cov-mode", str(params.cov_mode), "-e", str(params.evalue),
        "--alignment-type", str(params.alignment_type), "--tmscore-threshold", str(params.tmscore_threshold),
        "--lddt-threshold", str(params.lddt_threshold),
    ]  # fmt: skip


def entry_checksum(name: str) -> str:
    """The sequence checksum behind a foldseek entry name (``<checksum>.pdb_A``, ``<checksum>_A``...)."""
    m = _CHECKSUM.match(name.strip())
    if not m:
        raise ValueError(f"expected an entry named after a 32-digit checksum, found {name!r}")
    return m.group(1)


def parse_cluster_tsv(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(representative, member) checksum pairs of a cluster TSV, sorted."""
    pairs = set()
    with open(path, newline="") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if row:
                pairs.add((entry_checksum(row[0]), entry_checksum(row[1])))
    return sorted(pairs)


def parse_m8(path: str | os.PathLike[str], *, target_db: str, checksum_targets: bool = False) -> pa.Table:
    """A ``--format-mode 4`` alignment file (header line) as a table, sorted by query, e-value, target."""
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = set(SEARCH_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: expected columns {', '.join(SEARCH_COLUMNS)}, missing {', '.join(sorted(missing))}")
        for r in reader:
            row = {"query": entry_checksum(r["query"]), "target_db": target_db,
                   "target": entry_checksum(r["target"]) if checksum_targets else r["target"]}  # fmt: skip
            for c in SEARCH_COLUMNS[2:]:
                row[c] = float(r[c]) if pa.types.is_floating(HITS_SCHEMA.field(c).type) else int(float(r[c]))
            rows.append(row)
    rows.sort(key=lambda r: (r["query"], r["evalue"], -r["bits"], r["target"]))
    return pa.Table.from_pylist(rows, schema=HITS_SCHEMA)


def foldseek_createdb(binary: str, inputs: Sequence[str | os.PathLike[str]], db: str | os.PathLike[str], *, threads: int, include: str | None = None) -> Path:
    """``foldseek createdb`` straight from structure files or archives (``.tar`` read
    directly); ``include`` is a regular expression on member names (``--file-include``)."""
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    extra = ["--file-include", include] if include else []
    run_tool([binary, "createdb", *inputs, db, *extra, "--threads", str(threads)], logger=log)
    return Path(db)


def _confidence(metadata: str | os.PathLike[str]) -> dict[str, tuple[float | None, float | None]]:
    t = pq.read_table(metadata, columns=["checksum", "plddt", "ptm", "is_duplicate", "status"])
    out = {}
    for c, pl, pt, dup, st in zip(*(t[k].to_pylist() for k in ("checksum", "plddt", "ptm", "is_duplicate", "status"))):
        if st == Status.FOLDED and not dup:
            out[c] = (pl, pt)
    return out


def clusters_table(pairs: list[tuple[str, str]], confidence: dict[str, tuple[float | None, float | None]], *, best_confidence: bool) -> pa.Table:
    """Cluster table from (representative, member) pairs; with ``best_confidence`` the
    representative of each cluster is re-chosen Atlas-style: the member with the highest
    pTM x pLDDT (ties: smallest checksum)."""
    groups: dict[str, list[str]] = {}
    for rep, mem in pairs:
        groups.setdefault(rep, []).append(mem)
    if best_confidence:
        def score(c: str) -> tuple[float, str]:
            pl, pt = confidence.get(c, (None, None))
            return (-(pl or 0.0) * (pt or 0.0), c)

        groups = {min(mems, key=score): mems for mems in groups.values()}
    rows = []
    for cid, rep in enumerate(sorted(groups)):
        mems = sorted(set(groups[rep]) | {rep})
        for m in mems:
            pl, pt = confidence.get(m, (None, None))
            rows.append({"cluster_id": cid, "representative": rep, "member": m, "is_representative": m == rep, "plddt": pl, "ptm": pt, "cluster_size": len(mems)})
    return pa.Table.from_pylist(rows, schema=CLUSTERS_SCHEMA)


def atlas_db(binary: str, structures: str | os.PathLike[str], db_dir: str | os.PathLike[str], *, threads: int) -> Path | None:
    """The foldseek database of an atlas's high-confidence shards in ``db_dir`` (created);
    None, and an empty folder, when there is no high-confidence structure."""
    Path(db_dir).mkdir(parents=True, exist_ok=True)
    shards = shard_list(structures)
    return foldseek_createdb(binary, shards, foldseek_db_prefix(db_dir), threads=threads, include=PDB_MEMBERS) if shards else None


def _existing_db(db_dir: str | os.PathLike[str]) -> Path | None:
    db = foldseek_db_prefix(db_dir)
    return db if Path(f"{db}.dbtype").exists() else None


def foldseek_cluster(binary: str, db_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, metadata: str | os.PathLike[str], settings: FoldseekSettings, threads: int) -> pa.Table:
    """``foldseek cluster`` + ``createtsv`` of the database in ``db_dir``; writes ``out``
    (clusters.parquet; empty when there is no database) and returns it."""
    db = _existing_db(db_dir)
    if db is None:
        return empty_output(out, CLUSTERS_SCHEMA)
    with tempfile.TemporaryDirectory(prefix="foldseek-", dir=Path(out).parent) as tmp:
        clu = Path(tmp) / "clu"
        run_tool([binary, "cluster", db, clu, Path(tmp) / "tmp", *cluster_args(settings.cluster), "--threads", str(threads)], logger=log)
        tsv = Path(tmp) / "clu.tsv"
        run_tool([binary, "createtsv", db, db, clu, tsv, "--threads", str(threads)], logger=log)
        table = clusters_table(parse_cluster_tsv(tsv), _confidence(metadata), best_confidence=settings.representative == "best_confidence")
    write_table(table, out, CLUSTERS_SCHEMA)
    return table


def foldseek_search(binary: str, db_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, search: FoldseekSearchSettings, threads: int) -> pa.Table:
    """Search the database in ``db_dir`` against each target (a foldseek DB, or a folder /
    archive of structures, turned into a DB first); writes hits.parquet, sorted (empty
    without a database or targets)."""
    db = _existing_db(db_dir)
    if db is None or not search.targets:
        return empty_output(out, HITS_SCHEMA)
    tables = []
    evalue, max_seqs = search.evalue, search.max_seqs
    with tempfile.TemporaryDirectory(prefix="foldseek-", dir=Path(out).parent) as tmp:
        for k, target in enumerate(search.targets):
            tdb: str | Path = target
            if not Path(f"{target}.dbtype").exists():  # structures, not a DB
                tdb = foldseek_createdb(binary, [target], Path(tmp) / f"target{k}" / "db", threads=threads)
            aln = Path(tmp) / f"aln{k}"
            run_tool([binary, "search", db, tdb, aln, Path(tmp) / "tmp", "-a", "-e", str(evalue), "--max-seqs", str(max_seqs), "--threads", str(threads)], logger=log)
            m8 = Path(tmp) / f"hits{k}.m8"
            run_tool([binary, "convertalis", db, tdb, aln, m8, "--format-mode", "4", "--format-output", ",".join(SEARCH_COLUMNS), "--threads", str(threads)], logger=log)
            tables.append(parse_m8(m8, target_db=str(target)))
    table = pa.concat_tables(tables) if tables else HITS_SCHEMA.empty_table()
    write_table(table, out, HITS_SCHEMA)
    return table


def mmseqs_linclust(binary: str, sequences: str | os.PathLike[str], out: str | os.PathLike[str], *, settings: MmseqsSettings, threads: int) -> pa.Table:
    """Sequence clustering of the unique sequences with ``mmseqs easy-linclust`` (the ESM
    Atlas's clust30: 30% identity, 80% coverage, cov-mode 1); writes ``out``."""
    ms = settings
    t = pq.read_table(sequences, columns=["checksum", "sequence"])
    with tempfile.TemporaryDirectory(prefix="mmseqs-", dir=Path(out).parent) as tmp:
        fasta = Path(tmp) / "unique.fasta"
        with open(fasta, "w") as fh:
            for c, s in zip(t["checksum"].to_pylist(), t["sequence"].to_pylist()):
                fh.write(f">{c}\n{s}\n")
        pairs: list[tuple[str, str]] = []
        if t.num_rows:
            prefix = Path(tmp) / "clu"
            run_tool([binary, "easy-linclust", fasta, prefix, Path(tmp) / "tmp", "--min-seq-id", str(ms.min_seq_id), "-c", str(ms.coverage),
                      "--cov-mode", str(ms.cov_mode), "--threads", str(threads)], logger=log)  # fmt: skip
            pairs = parse_cluster_tsv(f"{prefix}_cluster.tsv")
    groups: dict[str, list[str]] = {}
    for rep, mem in pairs:
        groups.setdefault(rep, []).append(mem)
    rows = [{"cluster_id": cid, "representative": rep, "member": m, "cluster_size": len(groups[rep])} for cid, rep in enumerate(sorted(groups)) for m in sorted(groups[rep])]
    table = pa.Table.from_pylist(rows, schema=SEQ_CLUSTERS_SCHEMA)
    write_table(table, out, SEQ_CLUSTERS_SCHEMA)
    return table


def shard_list(structures: str | os.PathLike[str], *, collection: str = HIGHCONF) -> list[Path]:
    """The shards of one collection in an atlas structures folder, in order."""
    return sorted(Path(structures).glob(shard_glob(collection)))


def empty_output(path: str | os.PathLike[str], schema: pa.Schema) -> pa.Table:
    """Write an empty table (nothing to annotate) and return it."""
    table = schema.empty_table()
    write_table(table, path, schema)
    return table
