"""Redundancy reduction before folding (``ingest.redundancy``): fold one representative
per cluster of similar sequences, resolve every other member to it.

The ESM Metagenomic Atlas folded MGnify90: MGnify's sequences clustered at 90% identity,
one representative per cluster. With ``cluster90`` a release's new unique sequences go
through two MMseqs2 steps (every call through :func:`foldatlas.tools.run_tool`):

1. **Join the store** (later releases): ``easy-search`` of the new sequences against
   every sequence the store has folded under this fingerprint; a new sequence with a hit
   at or above both thresholds becomes a member of its best hit (highest identity, then
   bit score, then smallest checksum). This is what ``mmseqs clusterupdate`` does for a
   clustering database (new sequences join existing representatives first), without
   keeping MMseqs2's own database files in the store.
2. **Cluster the rest**: ``linclust`` with ``--cluster-mode 2`` (greedy by length: a
   cluster's representative is its longest sequence). The input is written longest first,
   ties by checksum, so the representatives are the same whatever the thread count or
   input order. Each member is then aligned to its representative (``align -a
   --alignment-mode 3``, exact identity and coverage); a member whose exact alignment
   falls below a threshold is folded itself instead (never resolved below the
   thresholds).

Thresholds (:data:`MODES`): identity (``--min-seq-id``, MMseqs2's ``fident``: identical
residues over alignment columns) and coverage of both sequences (``-c`` with
``--cov-mode 0``), both 0.9 for ``cluster90``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import duck
from .errors import ConfigError
from .tools import find_binary, run_tool

__all__ = ["MODES", "Redundancy", "Thresholds", "thresholds", "RESOLVED_SCHEMA", "mmseqs_binary", "write_fasta", "search_representatives", "cluster_sequences"]

log = logging.getLogger("foldatlas.redundancy")


@dataclass(frozen=True)
class Thresholds:
    """Minimum identity and coverage (of both sequences) for a member to be resolved."""

    identity: float
    coverage: float

    def args(self, threads: int) -> list[str]:
        """MMseqs2 options of these thresholds, with exact alignments (``--alignment-mode 3``)."""
        return ["--min-seq-id", str(self.identity), "-c", str(self.coverage), "--cov-mode", "0", "--alignment-mode", "3", "-e", "inf", "--threads", str(threads)]


@dataclass(frozen=True)
class Redundancy:
    """What planning with ``ingest.redundancy`` needs: the thresholds, the mmseqs program,
    and the store's published ``members``, ``sequences`` and ``structures`` files (the
    members earlier releases resolved, the text of every sequence they folded with a
    structure, and their structure index: a published member whose representative has
    no structure is resolved again)."""

    thresholds: Thresholds
    binary: str
    members: tuple[Path, ...] = ()
    folded: tuple[Path, ...] = ()
    structures: tuple[Path, ...] = ()


#: ``ingest.redundancy`` values other than ``none``.
MODES = {"cluster90": Thresholds(identity=0.9, coverage=0.9)}

#: Members resolved to a representative.
RESOLVED_SCHEMA = pa.schema(
    [("checksum", pa.string()), ("representative", pa.string()), ("identity", pa.float64()), ("coverage", pa.float64()), ("rep_coverage", pa.float64())]
)
_ALIGN_COLUMNS = "query,target,fident,qcov,tcov,bits"
_INSTALL = "Install it (apt-get install mmseqs2, or conda install -c bioconda mmseqs2, or run with --sdm conda), or set ingest.redundancy: none."


def mmseqs_binary(binary: str) -> str:
    """The mmseqs program ``ingest.redundancy`` runs (``mmseqs.binary``), resolved on PATH."""
    return find_binary(binary, key="mmseqs.binary", install=_INSTALL)


def thresholds(mode: str) -> Thresholds:
    """The thresholds of an ``ingest.redundancy`` mode."""
    if mode not in MODES:
        raise ConfigError(f"config key 'ingest.redundancy' = {mode!r}: expected none or one of {', '.join(MODES)}", key="ingest.redundancy", value=mode)
    return MODES[mode]


def write_fasta(batches: Iterable[pa.RecordBatch], path: str | os.PathLike[str]) -> int:
    """Write ``checksum`` (as the identifier) and ``sequence`` columns as FASTA; the number written."""
    n = 0
    with open(path, "w", encoding="ascii") as fh:
        for b in batches:
            fh.writelines(f">{c}\n{s}\n" for c, s in zip(b.column("checksum").to_pylist(), b.column("sequence").to_pylist()))
            n += b.num_rows
    return n


def _read_alignments(path: Path, out: Path, con: Any, *, member: str, representative: str, member_cov: str, rep_cov: str, t: Thresholds) -> int:
    """MMseqs2 alignments (``_ALIGN_COLUMNS``, tab-separated) as resolved members
    (:data:`RESOLVED_SCHEMA`), written to Parquet ``out`` by ``con`` (under its memory
    limit, spilling: at 10^9 sequences they are tens of GB), sorted by checksum; return
    their number. The best alignment per member (identity, bits, then smallest
    representative), kept when both thresholds hold; alignments of a sequence to itself
    are left out."""
    if path.stat().st_size == 0:  # no hit at all (DuckDB cannot sniff an empty file)
        pq.write_table(RESOLVED_SCHEMA.empty_table(), out)
        return 0
    cols = "{'query': 'VARCHAR', 'target': 'VARCHAR', 'fident': 'DOUBLE', 'qcov': 'DOUBLE', 'tcov': 'DOUBLE', 'bits': 'DOUBLE'}"
    con.execute(
        f"""COPY (SELECT {member} AS checksum, {representative} AS representative, fident AS identity,
                         {member_cov} AS coverage, {rep_cov} AS rep_coverage
                  FROM read_csv({duck.sql_path(path)}, delim='\\t', header=false, columns={cols})
                  WHERE query <> target AND fident >= ? AND qcov >= ? AND tcov >= ?
                  QUALIFY row_number() OVER (PARTITION BY {member} ORDER BY fident DESC, bits DESC, {representative}) = 1
                  ORDER BY checksum)
            TO {duck.sql_path(out)} (FORMAT parquet)""",
        [t.identity, t.coverage, t.coverage],
    )
    return pq.ParquetFile(out).metadata.num_rows


def search_representatives(binary: str, queries: Path, targets: Path, scratch: Path, t: Thresholds, *, threads: int, con: Any) -> Path:
    """New sequences (``queries`` FASTA) that join a sequence the store folded
    (``targets``): each with its best target at or above the thresholds, as a Parquet
    file of :data:`RESOLVED_SCHEMA` in ``scratch`` (written by DuckDB connection ``con``)."""
    out = scratch / "search.tsv"
    run_tool([binary, "easy-search", queries, targets, out, scratch / "search_tmp", *t.args(threads), "--format-output", _ALIGN_COLUMNS], logger=log)
    found = scratch / "joined.parquet"
    n = _read_alignments(out, found, con, member="query", representative="target", member_cov="qcov", rep_cov="tcov", t=t)
    log.info("%d new sequences join a representative the store folded", n)
    return found


def cluster_sequences(binary: str, fasta: Path, scratch: Path, t: Thresholds, *, threads: int, con: Any) -> Path:
    """Members of the clusters of ``fasta`` (written longest first, ties by checksum), each
    with its representative and the exact identity and coverage of their alignment, as a
    Parquet file of :data:`RESOLVED_SCHEMA` in ``scratch`` (written by DuckDB connection
    ``con``). A member whose exact alignment is below a threshold is left out (it is
    folded itself)."""
    work = scratch / "linclust"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db, clu, aln = work / "seqs", work / "clu", work / "aln"
    run_tool([binary, "createdb", fasta, db, "--shuffle", "0"], logger=log)
    run_tool([binary, "linclust", db, clu, work / "tmp", *t.args(threads), "--cluster-mode", "2"], logger=log)
    run_tool([binary, "align", db, db, clu, aln, "-a", "--alignment-mode", "3", "-e", "inf", "--threads", str(threads)], logger=log)
    run_tool([binary, "convertalis", db, db, aln, work / "aln.tsv", "--format-output", _ALIGN_COLUMNS, "--threads", str(threads)], logger=log)
    run_tool([binary, "createtsv", db, db, clu, work / "clu.tsv", "--threads", str(threads)], logger=log)
    members = scratch / "members.parquet"
    n = _read_alignments(work / "aln.tsv", members, con, member="target", representative="query", member_cov="tcov", rep_cov="qcov", t=t)
    clustered = _count_members(work / "clu.tsv")
    if clustered > n:
        log.info("%d members fall below a threshold in their exact alignment: they are folded themselves", clustered - n)
    log.info("linclust: %d members resolved to a representative", n)
    return members


def _count_members(clu_tsv: Path) -> int:
    """Members (not representatives) in a ``createtsv`` clustering (representative, member)."""
    con = duck.connect()
    n = con.execute(
        f"SELECT count(*) FROM read_csv({duck.sql_path(clu_tsv)}, delim='\\t', header=false, columns={{'rep': 'VARCHAR', 'member': 'VARCHAR'}}) WHERE rep <> member"
    ).fetchone()[0]
    con.close()
    return int(n)
