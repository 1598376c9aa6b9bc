"""Structural and sequence annotation: foldseek databases and search, mmseqs2 clustering.

Every program runs through :func:`foldatlas.tools.run_tool` (argument lists, recorded
command, exit code and stderr), and is looked for with :func:`tool_binary` where it
runs: at the start of a local run on the host (``onstart``), and in every rule's own
environment (so ``--sdm conda`` works and a missing program fails the rule clearly).

The annotation follows the atlas's checksum buckets: one ``foldseek_createdb`` and one
``foldseek_search`` job per bucket, each as large as its bucket, whatever the atlas's
size. ``foldseek createdb`` runs once per shard of the bucket (a ``.tar`` read directly,
its PDB members only: ``--file-include``; without copies, a temporary shard copied from
the fold archives: :func:`indexed_bucket_db`), so each call holds one shard; entry names are mapped
back to sequence checksums (foldseek names an entry after its member, ``<checksum>``,
plus a chain suffix for multi-chain files). Result files of foldseek and mmseqs (cluster
TSVs, alignment tables) are read by DuckDB, never as Python lists of rows, and every table
is sorted before it is written, since foldseek's row order varies between identical runs.
The Atlas-style clustering (sequence clusters, their best structure, foldseek clusters of
those) is :mod:`foldatlas.clustering`.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .archive import copy_members
from .atomic import atomic_dir, staged_for
from .dbfiles import db_prefixes, read_lookup
from .duck import connect, sql_path
from .errors import InternalError
from .layout import HIGHCONF, bucket_shards, shard_name, target_db_prefix
from .settings import FoldseekClusterSettings, FoldseekSearchSettings, MmseqsSettings
from .sizing import split_memory_limit
from .tables import HITS_SCHEMA, SEARCH_COLUMNS, SEQ_CLUSTERS_SCHEMA, write_batches, write_table
from .tools import find_binary, run_tool

__all__ = [
    "TOOLS",
    "CHECKSUM_SQL",
    "tool_binary",
    "entry_checksum",
    "cluster_pairs_sql",
    "parse_cluster_tsv",
    "parse_m8",
    "foldseek_createdb",
    "foldseek_search",
    "linclust_args",
    "mmseqs_linclust",
    "indexed_bucket_db",
    "bins_db",
    "bucket_db",
    "target_db",
    "shard_dbs",
    "is_db",
    "remove_other_buckets",
    "empty_output",
    "cluster_args",
    "arrow_batches",
    "duckdb_gb",
    "duck_connection",
]

log = logging.getLogger("foldatlas.annotate")

_CHECKSUM = re.compile(r"^([0-9a-f]{32})(?:\.pdb|\.cif)?(?:\.gz)?(?:_[A-Za-z0-9]+)?$")
#: The same rule in DuckDB: the checksum an entry name starts with ('' when none).
CHECKSUM_SQL = "regexp_extract({col}, '^([0-9a-f]{{32}})(?:\\.pdb|\\.cif)?(?:\\.gz)?(?:_[A-Za-z0-9]+)?$', 1)"
#: foldseek createdb reads only the PDB members of a shard (a shard may hold ModelCIF too).
PDB_MEMBERS = r"\.pdb\.gz$"

#: External programs by config section, with how to install each.
TOOLS = {
    "foldseek": "Install it from bioconda (conda install -c bioconda foldseek, or run with --sdm conda: envs/foldseek.yaml), or set foldseek.enabled: false.",
    "mmseqs": "Install it (apt-get install mmseqs2, or conda install -c bioconda mmseqs2, or run with --sdm conda), or set mmseqs.enabled: false.",
}


def duck_connection(database: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """:func:`foldatlas.duck.connect` without DuckDB's progress bar (which it prints on
    stdout for long queries, even into a job's log)."""
    con = connect(database, **kwargs)
    con.execute("SET enable_progress_bar = false")
    return con


def tool_binary(tool: str, binary: str) -> str:
    """Path of ``binary`` (the ``<tool>.binary`` setting) where this runs, or a
    :class:`~foldatlas.errors.ConfigError` saying how to install it."""
    return find_binary(binary, key=f"{tool}.binary", install=TOOLS[tool])


def cluster_args(params: FoldseekClusterSettings) -> list[str]:
    """``foldseek cluster`` options of the ``foldseek.cluster`` section."""
    return [
        "-c", str(params.coverage), "--cov-mode", str(params.cov_mode), "-e", str(params.evalue),
        "--alignment-type", str(params.alignment_type), "--tmscore-threshold", str(params.tmscore_threshold),
        "--lddt-threshold", str(params.lddt_threshold), "--cluster-steps", str(params.steps),
    ]  # fmt: skip


def linclust_args(settings: MmseqsSettings) -> list[str]:
    """``mmseqs linclust`` options of the ``mmseqs`` section (defaults: the ESM Atlas's
    clust30, ``--min-seq-id 0.3 --kmer-per-seq 100 --cluster-mode 2 --cov-mode 1 -c 0.8``)."""
    return [
        "--min-seq-id", str(settings.min_seq_id), "-c", str(settings.coverage), "--cov-mode", str(settings.cov_mode),
        "--cluster-mode", str(settings.cluster_mode), "--kmer-per-seq", str(settings.kmer_per_seq),
    ]  # fmt: skip


def entry_checksum(name: str) -> str:
    """The sequence checksum behind a foldseek entry name (``<checksum>.pdb_A``, ``<checksum>_A``...)."""
    m = _CHECKSUM.match(name.strip())
    if not m:
        raise ValueError(f"expected an entry named after a 32-digit checksum, found {name!r}")
    return m.group(1)


def _check_names(con: Any, path: str | os.PathLike[str], relation: str, columns: Sequence[str]) -> None:
    """Raise, naming the file and the entry, when an entry name is not a checksum's."""
    for col in columns:
        bad = next(iter(con.execute(f"SELECT {col} FROM {relation} WHERE {CHECKSUM_SQL.format(col=col)} = '' LIMIT 1").fetchall()), None)
        if bad is not None:
            raise ValueError(f"{path}: expected entries named after a 32-digit checksum, found {bad[0]!r}")


def cluster_pairs_sql(con: Any, path: str | os.PathLike[str]) -> str:
    """A DuckDB query (over the file, streamed) of the distinct (representative, member)
    checksum pairs of a cluster TSV (foldseek or mmseqs ``createtsv``), after checking that
    every entry name is a checksum's."""
    raw = f"read_csv({sql_path(path)}, delim='\\t', header=false, columns={{'rep': 'VARCHAR', 'mem': 'VARCHAR'}}, quote='', escape='')"
    _check_names(con, path, raw, ("rep", "mem"))
    rep, mem = CHECKSUM_SQL.format(col="rep"), CHECKSUM_SQL.format(col="mem")
    return f"SELECT DISTINCT {rep} AS representative, {mem} AS member FROM {raw}"


def parse_cluster_tsv(path: str | os.PathLike[str]) -> pa.Table:
    """(representative, member) checksum pairs of a cluster TSV, distinct and sorted."""
    con = duck_connection(threads=1)
    return con.sql(f"SELECT * FROM ({cluster_pairs_sql(con, path)}) ORDER BY representative, member").to_arrow_table()


def _m8_sql(con: Any, path: str | os.PathLike[str], target_db: str, checksum_targets: bool) -> str:
    head = con.sql(f"SELECT * FROM read_csv({sql_path(path)}, delim='\\t', header=true, all_varchar=true) LIMIT 0").columns
    missing = set(SEARCH_COLUMNS) - set(head)
    if missing:
        raise ValueError(f"{path}: expected columns {', '.join(SEARCH_COLUMNS)}, missing {', '.join(sorted(missing))}")
    raw = f"read_csv({sql_path(path)}, delim='\\t', header=true, all_varchar=true, quote='', escape='')"
    _check_names(con, path, raw, ("query", *(("target",) if checksum_targets else ())))
    target = CHECKSUM_SQL.format(col="target") if checksum_targets else "target"
    cols = [f"{CHECKSUM_SQL.format(col='query')} AS query", f"{sql_path(target_db)} AS target_db", f"{target} AS target"]
    for c in SEARCH_COLUMNS[2:]:
        kind = "DOUBLE" if pa.types.is_floating(HITS_SCHEMA.field(c).type) else "BIGINT"
        cols.append(f"CAST(CAST({c} AS DOUBLE) AS {kind}) AS {c}" if kind == "BIGINT" else f"CAST({c} AS DOUBLE) AS {c}")
    return f"SELECT {', '.join(cols)} FROM {raw}"


_HITS_ORDER = "ORDER BY query, evalue, bits DESC, target, target_db"


def parse_m8(path: str | os.PathLike[str], *, target_db: str, checksum_targets: bool = False) -> pa.Table:
    """A ``--format-mode 4`` alignment file (header line) as a table, sorted by query,
    e-value, bits (descending), target; read by DuckDB."""
    con = duck_connection(threads=1)
    return con.sql(f"SELECT * FROM ({_m8_sql(con, path, target_db, checksum_targets)}) {_HITS_ORDER}").to_arrow_table().cast(HITS_SCHEMA)


def foldseek_createdb(binary: str, inputs: Sequence[str | os.PathLike[str]], db: str | os.PathLike[str], *, threads: int, include: str | None = None) -> Path:
    """``foldseek createdb`` straight from structure files or archives (``.tar`` read
    directly); ``include`` is a regular expression on member names (``--file-include``)."""
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    extra = ["--file-include", include] if include else []
    run_tool([binary, "createdb", *inputs, db, *extra, "--threads", str(threads)], logger=log)
    return Path(db)


def bucket_db(binary: str, shards: str | os.PathLike[str], db_dir: str | os.PathLike[str], *, threads: int) -> list[Path]:
    """One foldseek database per high-confidence shard of one bucket's structures folder
    (``shards``, ``atlas/structures/<bucket>/``): ``<db_dir>/highconf_NNNNNN/highconf``
    (``db_dir`` written atomically; empty when the bucket has no high-confidence
    structure). Each ``createdb`` holds one shard, so memory does not grow with the atlas."""
    out = []
    with atomic_dir(db_dir) as tmp:
        for shard in bucket_shards(shards):
            db = foldseek_createdb(binary, [shard], Path(tmp) / shard.stem / HIGHCONF, threads=threads, include=PDB_MEMBERS)
            out.append(Path(db_dir) / db.relative_to(tmp))
    return out


def bins_db(binary: str, shards: str | os.PathLike[str], db_dir: str | os.PathLike[str], *, threads: int) -> list[Path]:
    """One foldseek database per ESM Atlas bin of one bucket's bin shards (``shards``,
    ``atlas/bins/<bucket>/``, :func:`foldatlas.bins.repack_bins`): ``<db_dir>/<bin>/<bin>``
    from that bin's shards (``db_dir`` written atomically; empty when the bucket has no
    structure). A bin's database over the whole atlas is its buckets' databases (one
    foldseek search each, or merged with :func:`foldatlas.dbfiles.select_entries`).

    ``createdb`` leaves out a chain it does not take for a protein (a chain of unknown
    residues only: "not proteins"), which a low-confidence bin may hold: those
    structures' checksums are listed in ``<db_dir>/<bin>/<bin>.ignored``, one a line,
    and logged, so that none is lost without a trace."""
    by_bin: dict[str, list[Path]] = {}
    for shard in sorted(Path(shards).glob("*.tar")):
        by_bin.setdefault(shard.stem.rsplit("_", 1)[0], []).append(shard)
    out = []
    with atomic_dir(db_dir) as tmp:
        for name, files in sorted(by_bin.items()):
            db = foldseek_createdb(binary, files, Path(tmp) / name / name, threads=threads, include=PDB_MEMBERS)
            _record_ignored(db, files)
            out.append(Path(db_dir) / db.relative_to(tmp))
    return out


def _record_ignored(db: Path, shards: Sequence[Path]) -> None:
    """Write ``<db>.ignored``: the structures of ``shards`` (their PDB members) that the
    database ``db`` does not hold."""
    members = set()
    for shard in shards:
        with tarfile.open(shard, "r:") as tar:  # headers only: the reader seeks past the data
            members |= {m.name.removesuffix(".pdb.gz") for m in tar if m.name.endswith(".pdb.gz")}
    taken = set(read_lookup(db))
    if taken - members:
        raise InternalError(f"{db}: holds {len(taken - members)} entries that are not in {shards[0].parent}")
    ignored = sorted(members - taken)
    if ignored:
        log.warning("%s: foldseek createdb left out %d of %d structures (not a protein to it; listed in %s.ignored): %s",
                    db.name, len(ignored), len(members), db.name, ", ".join(ignored[:5]))  # fmt: skip
        Path(f"{db}.ignored").write_text("".join(f"{c}\n" for c in ignored))


def indexed_bucket_db(binary: str, index: str | os.PathLike[str], atlas_root: str | os.PathLike[str], db_dir: str | os.PathLike[str], *, threads: int, shard_size: int) -> list[Path]:
    """:func:`bucket_db` for an atlas without copies (``atlas.copy_structures: false``):
    the bucket's high-confidence structures, in the order of ``index`` (the bucket's
    file of ``index.parquet``, whose archives are the store's fold archives, relative to
    ``atlas_root``), are copied ``shard_size`` at a time into a temporary tar named as
    the copied shard would be, which ``createdb`` reads and which is then removed: the
    same databases as from copied shards, with one shard of scratch."""
    out = []
    with atomic_dir(db_dir) as tmp:
        rows = _highconf_entries(index)
        for k in itertools.count():
            batch = list(itertools.islice(rows, shard_size))
            if not batch:
                break
            shard = Path(tmp) / shard_name(HIGHCONF, k)
            copy_members(iter(batch), atlas_root, shard)
            db = foldseek_createdb(binary, [shard], Path(tmp) / shard.stem / HIGHCONF, threads=threads, include=PDB_MEMBERS)
            shard.unlink()
            out.append(Path(db_dir) / db.relative_to(tmp))
    return out


def _highconf_entries(index: str | os.PathLike[str]) -> Iterator[tuple[str, str, int, int]]:
    """``(archive, member, data_offset, data_length)`` of the high-confidence rows of an
    index file, in file order, read a batch at a time."""
    cols = ["collection", "archive", "member", "data_offset", "data_length"]
    with pq.ParquetFile(index) as f:
        for batch in f.iter_batches(batch_size=1 << 16, columns=cols):
            t = pa.Table.from_batches([batch])
            t = t.filter(pc.equal(t["collection"], HIGHCONF))
            yield from zip(*(t[c].to_pylist() for c in cols[1:]))


def target_db(binary: str, target: str | os.PathLike[str], db_dir: str | os.PathLike[str], *, threads: int) -> Path:
    """A search target that is structures (a folder, an archive, a file) as a foldseek
    database, ``<db_dir>/db`` (written atomically): made once, searched by every bucket."""
    with atomic_dir(db_dir) as tmp:
        foldseek_createdb(binary, [target], target_db_prefix(tmp), threads=threads)
    return target_db_prefix(db_dir)


def is_db(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is a foldseek database prefix (``<target>.dbtype`` exists)."""
    return Path(f"{target}.dbtype").exists()


def shard_dbs(db_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The shard databases of ``foldseek_createdb`` output folders (one per bucket), in
    folder order, then shard order."""
    dirs = [db_dirs] if isinstance(db_dirs, (str, os.PathLike)) else list(db_dirs)
    return [db for d in dirs for db in db_prefixes(d, HIGHCONF)]


def _of_another_split(name: str, keep: set[str]) -> bool:
    """Whether a name in a bucket folder is another split's: a name outside ``keep``, or
    the killed write of one (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``); other hidden
    names may be a job of this split at work, and stay."""
    if not name.startswith("."):
        return name not in keep
    staged = staged_for(name)
    return staged is not None and staged not in keep


def remove_other_buckets(folder: str | os.PathLike[str], buckets: Sequence[str], *, suffix: str = "") -> list[Path]:
    """Remove from ``folder`` every file or folder that is not ``<bucket><suffix>`` of one
    of ``buckets`` (what another bucket split of the atlas, or foldatlas < 0.9, left
    there), so that a reader of the folder sees this atlas's rows only; return them.
    Only names outside ``buckets`` are removed, so the jobs of this split, running at the
    same time, never remove each other's files: a hidden name goes only when it is a
    killed write of another split's file (``.<name>.tmp-*``, ``.<name>.old-*``), since a
    job of this split may be writing its own."""
    keep = {f"{b}{suffix}" for b in buckets}
    gone = [f for f in sorted(Path(folder).iterdir()) if _of_another_split(f.name, keep)] if Path(folder).is_dir() else []
    for f in gone:
        log.info("removing %s: not one of the atlas's buckets", f)
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
    return gone


def _search_one(binary: str, db: Path, tdb: str | Path, tmp: Path, search: FoldseekSearchSettings, threads: int, split: list[str]) -> Path:
    aln, m8 = tmp / "aln", tmp / "hits.m8"
    run_tool([binary, "search", db, tdb, aln, tmp / "tmp", "-a", "-e", str(search.evalue), "--max-seqs", str(search.max_seqs),
              "--threads", str(threads), *split], logger=log)  # fmt: skip
    run_tool([binary, "convertalis", db, tdb, aln, m8, "--format-mode", "4", "--format-output", ",".join(SEARCH_COLUMNS), "--threads", str(threads)], logger=log)
    return m8


def foldseek_search(
    binary: str,
    db_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    search: FoldseekSearchSettings,
    threads: int,
    mem_mb: int | None = None,
    target_dbs: Mapping[str, str | os.PathLike[str]] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> int:
    """Search every shard database in ``db_dirs`` against each target of ``search``
    (a foldseek DB, or structures: the database ``target_dbs`` maps it to, made by
    :func:`target_db`, or else one made here); the hits of every (shard, target) go into
    one DuckDB table on disk, written sorted to ``out`` (a hits Parquet file; empty without a
    database or targets). ``target_db`` in the hits is the target as configured. Returns
    the number of hits. Working files (foldseek's, DuckDB's database and spill files)
    go to a temporary folder in ``scratch_dir`` (emptied first: a killed search's files
    are removed), or in the system's temporary folder; never beside ``out``, whose
    folder readers take as one table."""
    if scratch_dir is not None:
        shutil.rmtree(scratch_dir, ignore_errors=True)
        Path(scratch_dir).mkdir(parents=True)
    dbs = shard_dbs(db_dirs)
    if not dbs or not search.targets:
        return empty_output(out, HITS_SCHEMA).num_rows
    split = ["--split-memory-limit", split_memory_limit(mem_mb)] if mem_mb else []
    made = dict(target_dbs or {})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="foldseek-search-", dir=scratch_dir) as tmp:
        con = duck_connection(Path(tmp) / "hits.duckdb", memory_gb=duckdb_gb(mem_mb), spill_dir=Path(tmp) / "spill", threads=threads)
        con.execute(f"CREATE TABLE hits AS SELECT * FROM ({_empty_hits_sql()})")
        for k, target in enumerate(search.targets):
            tdb = made.get(target) or (target if is_db(target) else target_db(binary, target, Path(tmp) / f"target{k}", threads=threads))
            for n, db in enumerate(dbs):
                work = Path(tmp) / f"t{k}s{n}"
                work.mkdir()
                m8 = _search_one(binary, db, tdb, work, search, threads, split)
                con.execute(f"INSERT INTO hits {_m8_sql(con, m8, str(target), False)}")
                m8.unlink()
        return write_batches(arrow_batches(con, f"SELECT * FROM hits {_HITS_ORDER}"), out, HITS_SCHEMA)


def _empty_hits_sql() -> str:
    cols = ["''::VARCHAR AS query", "''::VARCHAR AS target_db", "''::VARCHAR AS target"]
    cols += [f"0::{'DOUBLE' if pa.types.is_floating(HITS_SCHEMA.field(c).type) else 'BIGINT'} AS {c}" for c in SEARCH_COLUMNS[2:]]
    return f"SELECT {', '.join(cols)} LIMIT 0"


def duckdb_gb(mem_mb: int | None) -> float | None:
    """DuckDB's share of a job's memory: half of it (the programs run one at a time)."""
    return None if not mem_mb else max(0.25, mem_mb / 2 / 1000)


def arrow_batches(con: Any, sql: str, rows: int = 1 << 17) -> Iterator[pa.RecordBatch]:
    """The result of ``sql`` as a stream of Arrow record batches."""
    reader = con.sql(sql).to_arrow_reader(rows)
    yield from reader


def fasta_bytes(batch: pa.RecordBatch) -> memoryview:
    """A batch's (checksum, sequence) rows as FASTA, one line a sequence, built by Arrow
    (about 10x faster than formatting each record in Python)."""
    text = pc.binary_join_element_wise(">", batch.column(0), "\n", batch.column(1), "\n", "")
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[text.offset : text.offset + len(text) + 1]
    return memoryview(text.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def _write_fasta(sequences: str | os.PathLike[str], fasta: Path) -> int:
    n = 0
    with open(fasta, "wb") as fh:
        for batch in pq.ParquetFile(sequences).iter_batches(batch_size=1 << 16, columns=["checksum", "sequence"]):
            fh.write(fasta_bytes(batch))
            n += batch.num_rows
    return n


def linclust_tsv(binary: str, fasta: str | os.PathLike[str], tmp: Path, *, settings: MmseqsSettings, threads: int,
                 mem_mb: int | None = None) -> tuple[Path, Path]:  # fmt: skip
    """Run ``createdb`` (of ``fasta``, one line a sequence), ``linclust`` and
    ``createtsv`` in ``tmp``; return the sequence database and the cluster TSV. With
    ``mem_mb``, mmseqs gets ``--split-memory-limit`` (:func:`split_memory_limit` of the
    whole request: the sequences are memory-mapped, pages the kernel reclaims within a
    job's memory limit, which a run under a 2,000 MB cgroup limit showed:
    bench/RESULTS.md).

    The three run one by one: the clusters of ``easy-linclust`` without its
    representative and member FASTA files, which foldatlas does not read and which were
    its largest steps in memory (bench/RESULTS.md)."""
    split = ["--split-memory-limit", split_memory_limit(mem_mb)] if mem_mb else []
    db, clu, tsv = tmp / "seqs", tmp / "clu", tmp / "clusters.tsv"
    # --createdb-mode 1: the database's sequences are the FASTA file's (one line each),
    # not a copy, as easy-linclust makes it
    run_tool([binary, "createdb", fasta, db, "--createdb-mode", "1"], logger=log)
    run_tool([binary, "linclust", db, clu, tmp / "tmp", *linclust_args(settings), "--threads", str(threads), "--remove-tmp-files", "1", *split], logger=log)
    run_tool([binary, "createtsv", db, db, clu, tsv, "--threads", str(threads)], logger=log)
    return db, tsv


def write_seq_clusters(con: Any, pairs: str, out: str | os.PathLike[str]) -> int:
    """Write the (representative, member) pairs of the query ``pairs`` as
    ``mmseqs/clusters.parquet`` (SEQ_CLUSTERS_SCHEMA: clusters numbered by
    representative, sorted by cluster and member); return its row count."""
    sql = f"""SELECT dense_rank() OVER (ORDER BY representative) - 1 AS cluster_id, representative, member,
                     count(*) OVER (PARTITION BY representative) AS cluster_size
              FROM ({pairs}) ORDER BY cluster_id, member"""
    return write_batches(arrow_batches(con, sql), out, SEQ_CLUSTERS_SCHEMA)


def mmseqs_linclust(binary: str, sequences: str | os.PathLike[str], out: str | os.PathLike[str], *, settings: MmseqsSettings, threads: int, mem_mb: int | None = None) -> int:
    """Sequence clusters of the unique sequences with mmseqs ``linclust`` (defaults: the
    ESM Atlas's clust30, :func:`linclust_tsv`); writes ``out`` sorted by cluster, member,
    and returns its row count. The FASTA is written batch by batch and the cluster TSV
    read by DuckDB."""
    with tempfile.TemporaryDirectory(prefix="mmseqs-", dir=Path(out).parent) as tmp:
        fasta = Path(tmp) / "unique.fasta"
        if _write_fasta(sequences, fasta) == 0:
            return empty_output(out, SEQ_CLUSTERS_SCHEMA).num_rows
        _, tsv = linclust_tsv(binary, fasta, Path(tmp), settings=settings, threads=threads, mem_mb=mem_mb)
        for done in [fasta, *Path(tmp).glob("seqs*"), *Path(tmp).glob("clu"), *Path(tmp).glob("clu.*")]:  # DuckDB reads only the TSV
            done.unlink(missing_ok=True)
        con = duck_connection(Path(tmp) / "clusters.duckdb", memory_gb=duckdb_gb(mem_mb), spill_dir=Path(tmp) / "spill", threads=threads)
        return write_seq_clusters(con, cluster_pairs_sql(con, tsv), out)


def empty_output(path: str | os.PathLike[str], schema: pa.Schema) -> pa.Table:
    """Write an empty table (nothing to annotate) and return it."""
    table = schema.empty_table()
    write_table(table, path, schema)
    return table
