"""Atlas-style structural clusters: sequence clusters first, then the best structure of each,
then foldseek clusters of those representatives only (ESM Atlas, ``highquality_clust30``).

1. The unique sequences are clustered by mmseqs ``easy-linclust`` at 30% identity
   (:func:`foldatlas.annotate.mmseqs_linclust`; without ``mmseqs.enabled`` every structure
   is its own sequence cluster).
2. Of the high-confidence structures of each sequence cluster, the one with the highest
   pTM x pLDDT represents it (ties: the smallest checksum, so the choice never depends on
   row order).
3. Only those representatives are put into one foldseek database (their entries copied
   from the shard databases, :func:`foldatlas.dbfiles.select_entries`), beside the table
   of every high-confidence structure's representative (:func:`select_representatives`,
   the job ``foldseek_representatives``), and clustered by ``foldseek cluster`` in one
   job or as a cascade of jobs (:mod:`foldatlas.cascade`).
4. Every high-confidence structure gets one row: its sequence cluster, its representative,
   and the representative's structural cluster.

All joins run in DuckDB over the Parquet files and foldseek's TSV, with a memory limit
and a spill folder, so no step holds the atlas in Python objects.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from dataclasses import astuple
from typing import Any

from .atomic import atomic_dir
from .annotate import CHECKSUM_SQL, arrow_batches, cluster_args, cluster_pairs_sql, duck_connection, duckdb_gb, empty_output, shard_dbs
from .cascade import CascadePlan, merge_rounds
from .dbfiles import db_size, select_entries
from .duck import sql_path, sql_paths
from .errors import InternalError
from .layout import REPRESENTATIVES
from .settings import FoldseekSettings
from .sizing import InputSize, check_prefilter_floor, split_memory_limit
from .status import Status
from .tables import CLUSTERS_SCHEMA, REPRESENTATIVES_SCHEMA, write_batches
from .tools import run_tool

__all__ = ["representatives", "select_representatives", "representatives_db", "structural_clusters"]

log = logging.getLogger("foldatlas.clustering")

#: The atlas's metadata: its folder, or the current buckets' files.
Metadata = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
#: One folder of shard databases, or several (one per checksum bucket).
DbFolders = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

_SCORE = "ptm * plddt DESC, member"
#: The table of every high-confidence structure with its representative, beside the database.
TABLE = f"{REPRESENTATIVES}.parquet"


def representatives(con: Any, metadata: Metadata, seq_clusters: str | os.PathLike[str] | None) -> int:
    """Create table ``hc`` in ``con``: every high-confidence structure (folded, first
    occurrence) of ``metadata`` (a file or folder, or several files) with its sequence
    cluster and the cluster's representative, the member of highest pTM x pLDDT (ties:
    smallest checksum). Returns the number of structures."""
    source = sql_path(metadata) if isinstance(metadata, (str, os.PathLike)) else sql_paths(metadata)
    structures = f"""SELECT DISTINCT checksum AS member, plddt, ptm FROM read_parquet({source})
                     WHERE high_confidence AND NOT is_duplicate AND status = '{Status.FOLDED}'"""
    if seq_clusters is None:
        clustered = f"SELECT s.*, NULL::BIGINT AS seq_cluster_id, s.member AS seq_representative FROM ({structures}) s"
    else:
        clustered = f"""SELECT s.*, c.cluster_id AS seq_cluster_id, c.representative AS seq_representative
                        FROM ({structures}) s LEFT JOIN read_parquet({sql_path(seq_clusters)}) c ON c.member = s.member"""
    con.execute(f"""CREATE TABLE hc AS
        SELECT *, first(member ORDER BY {_SCORE}) OVER w AS representative, count(*) OVER w AS seq_cluster_structures
        FROM ({clustered}) WINDOW w AS (PARTITION BY seq_representative)""")
    missing = next(iter(con.execute("SELECT member FROM hc WHERE seq_representative IS NULL LIMIT 1").fetchall()), None)
    if missing is not None:
        raise InternalError(f"{seq_clusters}: expected every high-confidence structure in a sequence cluster, {missing[0]} is in none")
    return con.execute("SELECT count(*) FROM hc").fetchall()[0][0]


def _representatives_db(con: Any, db_dirs: DbFolders, out: Path) -> int:
    """Copy the representatives' entries from every shard database of every bucket into
    one database."""
    # the distinct representatives once: recomputed in each shard's query, they made this
    # O(shards x structures)
    con.execute("CREATE TEMP TABLE reps AS SELECT DISTINCT representative FROM hc")
    want = con.execute("SELECT count(*) FROM reps").fetchall()[0][0]

    def parts() -> Iterator[tuple[Path, Any]]:
        for db in shard_dbs(db_dirs):
            keys = con.execute(f"""SELECT l.key FROM read_csv({sql_path(f'{db}.lookup')}, delim='\\t', header=false, quote='', escape='',
                                       columns={{'key': 'BIGINT', 'name': 'VARCHAR', 'file': 'BIGINT'}}) l
                                   SEMI JOIN reps r ON r.representative = {CHECKSUM_SQL.format(col='l.name')}
                                   ORDER BY l.key""").fetchnumpy()["key"]
            if len(keys):
                yield db, keys  # one shard's keys at a time, as a NumPy array

    found = parts()
    first = next(found, None)  # no shard holds a representative: n = 0, the error below
    n = select_entries(itertools.chain([first], found), out) if first is not None else 0
    if n != want:
        raise InternalError(f"expected {want} representatives in the shard databases, found {n}")
    return n


def _final_sql(best_confidence: bool) -> str:
    """Every structure with its structural cluster (table ``struct``: representative ->
    foldseek's cluster representative), re-chosen Atlas-style with ``best_confidence``."""
    reps = "SELECT DISTINCT s.rep, s.fs_rep, h.ptm, h.plddt FROM struct s JOIN hc h ON h.member = s.rep"
    pick = "first(rep ORDER BY ptm * plddt DESC, rep) OVER (PARTITION BY fs_rep)" if best_confidence else "fs_rep"
    return f"""WITH r AS (SELECT rep, {pick} AS cluster_representative FROM ({reps})),
                    c AS (SELECT *, dense_rank() OVER (ORDER BY cluster_representative) - 1 AS cluster_id,
                                 count(*) OVER (PARTITION BY cluster_representative) AS cluster_size FROM r)
               SELECT h.member, h.plddt, h.ptm, h.seq_cluster_id, h.seq_representative, h.seq_cluster_structures,
                      h.representative, h.member = h.representative AS is_representative,
                      c.cluster_id, c.cluster_representative, c.cluster_size,
                      count(*) OVER (PARTITION BY c.cluster_id) AS cluster_structures
               FROM hc h JOIN c ON c.rep = h.representative
               ORDER BY c.cluster_id, h.representative, h.member"""


def select_representatives(db_dirs: DbFolders, out_dir: str | os.PathLike[str], *, metadata: Metadata,
                           seq_clusters: str | os.PathLike[str] | None, threads: int, mem_mb: int | None = None) -> int:  # fmt: skip
    """Steps 1-3 of the module docstring: ``out_dir`` (written atomically) gets
    ``representatives.parquet`` (every high-confidence structure with its sequence
    cluster and representative) and the representatives' foldseek database
    ``representatives`` (none when there is no representative). Returns the number of
    representatives."""
    with atomic_dir(out_dir) as out, tempfile.TemporaryDirectory(prefix="representatives-", dir=Path(out_dir).parent) as tmp:
        con = duck_connection(Path(tmp) / "reps.duckdb", memory_gb=duckdb_gb(mem_mb), spill_dir=Path(tmp) / "spill", threads=threads)
        n = 0
        if shard_dbs(db_dirs) and representatives(con, metadata, seq_clusters):
            n = _representatives_db(con, db_dirs, out / REPRESENTATIVES)
            write_batches(arrow_batches(con, "SELECT * FROM hc ORDER BY member"), out / TABLE, REPRESENTATIVES_SCHEMA)
        else:
            write_batches([], out / TABLE, REPRESENTATIVES_SCHEMA)
    log.info("%d sequence-cluster representatives", n)
    return n


def representatives_db(folder: str | os.PathLike[str]) -> Path | None:
    """The representatives' database of a :func:`select_representatives` folder, None when
    there is none."""
    db = Path(folder) / REPRESENTATIVES
    return db if Path(f"{db}.dbtype").exists() else None


def foldseek_cluster_tsv(binary: str, db: Path, size: InputSize, tsv: Path, *, settings: FoldseekSettings, threads: int, mem_mb: int | None) -> None:
    """``foldseek cluster`` of ``db`` (of ``size``) in one job, its clusters as TSV."""
    if mem_mb:
        check_prefilter_floor(size, mem_mb)
    split = ["--split-memory-limit", split_memory_limit(mem_mb)] if mem_mb else []
    clu = tsv.with_suffix("")
    run_tool([binary, "cluster", db, clu, tsv.parent / "tmp", *cluster_args(settings.cluster), "--threads", str(threads), *split], logger=log)
    run_tool([binary, "createtsv", db, db, clu, tsv, "--threads", str(threads)], logger=log)


def structural_clusters(binary: str, reps_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, settings: FoldseekSettings, threads: int,
                        mem_mb: int | None = None, cascade: tuple[str | os.PathLike[str], Sequence[str | os.PathLike[str]]] | None = None) -> int:  # fmt: skip
    """Atlas-style clusters (module docstring, step 4) of the representatives of
    ``reps_dir`` (:func:`select_representatives`), into ``out`` (clusters.parquet, sorted
    by structural cluster, representative, member; empty when there is no
    representative); returns its row count. foldseek clusters them in this job, or, with
    ``cascade`` (the pre-clustering folder and each round's clusters folder,
    :mod:`foldatlas.cascade`), its rounds' clusterings are merged."""
    db = representatives_db(reps_dir)
    if db is None:
        return empty_output(out, CLUSTERS_SCHEMA).num_rows
    with tempfile.TemporaryDirectory(prefix="foldseek-", dir=Path(out).parent) as tmp:
        con = duck_connection(Path(tmp) / "clusters.duckdb", memory_gb=duckdb_gb(mem_mb), spill_dir=Path(tmp) / "spill", threads=threads)
        con.execute(f"CREATE TABLE hc AS SELECT * FROM read_parquet({sql_path(Path(reps_dir) / TABLE)})")
        size = InputSize(*astuple(db_size(db)))  # one read of the index
        n = size.sequences
        tsv = Path(tmp) / "clu.tsv"
        if cascade is None:
            log.info("foldseek cluster of %d sequence-cluster representatives", n)
            foldseek_cluster_tsv(binary, db, size, tsv, settings=settings, threads=threads, mem_mb=mem_mb)
        else:
            linclust, rounds = cascade
            merge_rounds(binary, db, linclust, rounds, tsv, plan=CascadePlan.read(linclust), threads=threads)
        con.execute(f"CREATE TABLE struct AS SELECT representative AS fs_rep, member AS rep FROM ({cluster_pairs_sql(con, tsv)})")
        clustered = con.execute("SELECT count(DISTINCT rep) FROM struct").fetchall()[0][0]
        if clustered != n:
            raise InternalError(f"{tsv}: expected all {n} representatives in foldseek's clusters, found {clustered}")
        return write_batches(arrow_batches(con, _final_sql(settings.representative == "best_confidence")), out, CLUSTERS_SCHEMA)
