"""The sequence clustering in jobs of bounded size: greedy clustering, segment by segment.

One ``mmseqs linclust`` over every unique sequence holds about 95 bytes a sequence that
no option bounds (the databases' indexes in its later steps: bench/RESULTS.md), about
66 GB at the 7x10^8 unique sequences of 10^9 records. With ``mmseqs.segments: P`` the
clustering is split as CD-HIT splits a large input (``cd-hit-para``), with linclust as
the engine:

1. :func:`split_segments`: the unique sequences, cut by length into ``P`` segments of
   about equal count, the longest first (one length is never split between segments).
2. Round ``r`` (``r = 0 .. P-1``), :func:`cluster_segment`: linclust clusters what is
   left of segment ``r`` (its sequences that no earlier round assigned); its
   representatives are the round's.
3. :func:`assign_segment`, for every later segment ``s > r``: linclust over the round's
   representatives and what is left of segment ``s``. A sequence of ``s`` whose cluster
   there has one of the round's representatives as its representative is assigned to
   it; the rest is left for the next round.
4. :func:`merge_segments`: the rounds' clusters and the assignments, every unique
   sequence exactly once (checked against ``sequences.parquet``), as
   ``mmseqs/clusters.parquet``.

This is greedy incremental clustering (``--cluster-mode 2``, which the ESM Atlas used
and which this requires), longest first: a sequence joins a representative at least as
long as itself, usually one of the earliest round that linclust pairs it with, or
becomes one. It is not the clustering of one linclust run (a sequence meets each round's
representatives in a separate run, and a member of an earlier round is no longer a
candidate), but each member is within the thresholds of its representative as
linclust's own are. A job holds at most two segments' sequences (the representatives of
one and what is left of another): about ``2 N / P``.

A folder (a segment, a round's representatives, or what an assignment left of a
segment) holds ``sequences.fasta`` and ``counts.json`` (its sequences and residues,
which size the next jobs); a round's also ``representatives.parquet``. The rounds'
clusters and the assignments are Parquet files of ``representative``, ``member``
checksums (``PAIRS_SCHEMA``), read by the merge only.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .annotate import arrow_batches, fasta_bytes, cluster_pairs_sql, duck_connection, duckdb_gb, empty_output, linclust_tsv, write_seq_clusters
from .atomic import atomic_dir, write_json
from .cascade import working as _working
from .duck import sql_path
from .errors import ConfigError, InternalError
from .layout import SEGMENT
from .settings import MmseqsSettings
from .sizing import COUNTS, InputSize, check_segments, counts_size
from .tables import write_batches
from .tools import run_tool

__all__ = ["split_segments", "segment_bounds", "segment_of", "segment_folder", "require_greedy", "cluster_segment", "assign_segment", "merge_segments", "PAIRS_SCHEMA"]

log = logging.getLogger("foldatlas.segments")

FASTA, REPRESENTATIVES = "sequences.fasta", "representatives.parquet"
#: A round's clusters and an assignment's pairs.
PAIRS_SCHEMA = pa.schema([pa.field("representative", pa.string(), nullable=False), pa.field("member", pa.string(), nullable=False)])
#: A round's representatives.
NAMES_SCHEMA = pa.schema([pa.field("checksum", pa.string(), nullable=False)])


def segment_folder(split: str | os.PathLike[str], segment: int) -> Path:
    """Segment ``segment``'s folder in the split's output folder."""
    return Path(split) / SEGMENT.format(segment)


def require_greedy(cluster_mode: int, segments: int) -> None:
    """Segments cluster greedily, longest first: only ``--cluster-mode 2`` means that.

    Raises
    ------
    ConfigError
        ``segments > 1`` with another cluster mode.
    """
    if segments > 1 and cluster_mode != 2:
        raise ConfigError(f"mmseqs.cluster_mode: expected 2 (greedy incremental, longest first) with mmseqs.segments {segments}, "
                          f"found {cluster_mode}; set mmseqs.segments: 1 for another mode", key="mmseqs.cluster_mode", value=cluster_mode)  # fmt: skip


def segment_bounds(lengths: np.ndarray, counts: np.ndarray, segments: int) -> np.ndarray:
    """The shortest length of each segment but the last, for sequences of ``lengths``
    (distinct, any order) with ``counts`` sequences each: segments of about equal count,
    longest first, a length never split. A segment may be empty (one length holding more
    than a segment's share). Segment of a sequence of length L: the number of bounds
    greater than L (:func:`segment_of`)."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    lengths, counts = np.asarray(lengths, dtype=np.int64)[order], np.asarray(counts, dtype=np.int64)[order]
    total, bounds, cum, seg = int(counts.sum()), [], 0, 0
    for length, n in zip(lengths.tolist(), counts.tolist()):
        cum += n
        while seg < segments - 1 and cum >= total * (seg + 1) / segments:
            bounds.append(length)
            seg += 1
    # a segment closed at length L holds L; the next starts below it
    return np.array(bounds + [0] * (segments - 1 - len(bounds)), dtype=np.int64)


def segment_of(lengths: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The segment of each sequence length (:func:`segment_bounds`)."""
    return np.searchsorted(-bounds, -np.asarray(lengths, dtype=np.int64), side="left")


def split_segments(sequences: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, segments: int, max_mem_mb: int | None = None) -> list[InputSize]:
    """Write the unique sequences of ``sequences`` (Parquet: ``checksum``, ``sequence``)
    into ``segments`` folders under ``out_dir`` (written atomically), by length, longest
    first; returns each segment's size. With ``max_mem_mb`` (``mmseqs.max_mem_mb``),
    first checks that the two largest segments fit one job
    (:func:`foldatlas.sizing.check_segments`), before anything is written."""
    if segments < 1:
        raise ConfigError(f"mmseqs.segments: expected at least 1, found {segments}", key="mmseqs.segments", value=segments)
    pf = pq.ParquetFile(sequences)
    histogram: dict[int, int] = {}
    # the length column where there is one (sequences.parquet's: 4 bytes a row, not the sequence)
    column = "length" if "length" in pf.schema_arrow.names else "sequence"
    for batch in pf.iter_batches(batch_size=1 << 16, columns=[column]):
        lengths = batch.column(0) if column == "length" else pc.utf8_length(batch.column(0))
        values, n = np.unique(lengths.to_numpy(zero_copy_only=False), return_counts=True)
        for length, count in zip(values.tolist(), n.tolist()):
            histogram[length] = histogram.get(length, 0) + count
    bounds = segment_bounds(np.array(list(histogram), dtype=np.int64), np.array(list(histogram.values()), dtype=np.int64), segments)
    if max_mem_mb is not None:
        lengths = np.array(list(histogram), dtype=np.int64)
        per_segment = np.bincount(segment_of(lengths, bounds), weights=np.array(list(histogram.values())), minlength=segments)
        check_segments(int(per_segment.sum()), segments, max_mem_mb, largest_two=int(np.sort(per_segment)[-2:].sum()))
    sizes = [[0, 0] for _ in range(segments)]
    with atomic_dir(out_dir) as out:
        folders = [segment_folder(out, s) for s in range(segments)]
        handles: list[Any] = []
        try:
            for folder in folders:
                folder.mkdir()
                handles.append(open(folder / FASTA, "wb"))
            for batch in pf.iter_batches(batch_size=1 << 16, columns=["checksum", "sequence"]):
                lengths = pc.utf8_length(batch.column(1)).to_numpy(zero_copy_only=False)
                seg = segment_of(lengths, bounds)
                for s in np.unique(seg).tolist():
                    rows = np.flatnonzero(seg == s)
                    handles[s].write(fasta_bytes(batch.take(pa.array(rows))))
                    sizes[s][0] += len(rows)
                    sizes[s][1] += int(lengths[rows].sum())
        finally:
            for fh in handles:
                fh.close()
        for folder, (n, r) in zip(folders, sizes):
            _write_counts(folder, InputSize(n, r))
    log.info("%d sequences in %d segments of %s sequences (shortest lengths %s)", sum(n for n, _ in sizes), segments,
             ", ".join(str(n) for n, _ in sizes), ", ".join(str(b) for b in bounds.tolist()))  # fmt: skip
    return [InputSize(n, r) for n, r in sizes]


def _write_counts(folder: Path, size: InputSize) -> None:
    write_json(folder / COUNTS, {"sequences": size.sequences, "residues": size.residues})


def _pass_through(remaining: Path, out: Path) -> InputSize:
    """``out`` gets ``remaining``'s sequences unchanged (a hard link where it can)."""
    try:
        os.link(remaining / FASTA, out / FASTA)
    except OSError:
        shutil.copyfile(remaining / FASTA, out / FASTA)
    size = counts_size(remaining)
    _write_counts(out, size)
    return size


def _subset_fasta(binary: str, db: Path, keys: np.ndarray, out_fasta: Path) -> InputSize:
    """The entries ``keys`` of the sequence database ``db`` as a FASTA file (one line a
    sequence); returns their count and residues (from the subset's index)."""
    if not len(keys):
        out_fasta.touch()
        return InputSize(0, 0)
    listing, sub = db.with_name(db.name + ".subset.keys"), db.with_name(db.name + "_subset")
    np.savetxt(listing, np.asarray(keys, dtype=np.int64), fmt="%d")
    run_tool([binary, "createsubdb", listing, db, sub, "--subdb-mode", "0", "-v", "1"], logger=log)
    run_tool([binary, "convert2fasta", sub, out_fasta, "-v", "1"], logger=log)
    index = pacsv.read_csv(f"{sub}.index", read_options=pacsv.ReadOptions(column_names=["key", "offset", "length"]),
                           parse_options=pacsv.ParseOptions(delimiter="\t"))  # fmt: skip
    n = index.num_rows
    if n != len(keys):
        raise InternalError(f"expected {len(keys)} entries in {sub}, found {n}")
    return InputSize(n, int(pc.sum(index["length"]).as_py() or 0) - 2 * n)  # each entry: residues, newline, NUL


def _lookup_sql(db: Path) -> str:
    """A DuckDB query of a database's ``.lookup``: ``key``, ``name`` (the checksum)."""
    columns = "{'key': 'BIGINT', 'name': 'VARCHAR', 'file': 'BIGINT'}"
    return f"SELECT key, name FROM read_csv({sql_path(f'{db}.lookup')}, delim='\\t', header=false, quote='', escape='', columns={columns})"


def _connection(tmp: Path, mem_mb: int | None, threads: int) -> Any:
    return duck_connection(tmp / "pairs.duckdb", memory_gb=duckdb_gb(mem_mb), spill_dir=tmp / "spill", threads=threads)


def _linclust_pairs(binary: str, fasta: Path, tmp: Path, expected: int, what: str, *, settings: MmseqsSettings, threads: int,
                    mem_mb: int | None) -> tuple[Path, Any]:  # fmt: skip
    """linclust over ``fasta``; its database and a DuckDB connection with the table
    ``pairs`` (representative, member), checked: each of the ``expected`` sequences once."""
    db, tsv = linclust_tsv(binary, fasta, tmp, settings=settings, threads=threads, mem_mb=mem_mb)
    con = _connection(tmp, mem_mb, threads)
    con.execute(f"CREATE TABLE pairs AS {cluster_pairs_sql(con, tsv)}")
    _check_once(con, "pairs", expected, what)
    return db, con


def _write_pairs(con: Any, table: str, out: str | os.PathLike[str]) -> int:
    return write_batches(arrow_batches(con, f"SELECT representative, member FROM {table} ORDER BY representative, member"), out, PAIRS_SCHEMA)


def cluster_segment(binary: str, remaining: str | os.PathLike[str], out_dir: str | os.PathLike[str], pairs: str | os.PathLike[str], *,
                    settings: MmseqsSettings, threads: int, mem_mb: int | None = None, scratch: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """A round's clustering: linclust over ``remaining`` (a folder: what is left of the
    round's segment). ``pairs`` gets its clusters (every sequence of ``remaining`` once),
    ``out_dir`` (atomic) the representatives (``sequences.fasta``, ``counts.json``,
    ``representatives.parquet``); returns the number of representatives."""
    size = counts_size(remaining)
    with atomic_dir(out_dir) as out, _working(scratch, out_dir) as tmp:
        if size.sequences == 0:
            empty_output(pairs, PAIRS_SCHEMA)
            empty_output(out / REPRESENTATIVES, NAMES_SCHEMA)
            (out / FASTA).touch()
            _write_counts(out, InputSize(0, 0))
            return 0
        db, con = _linclust_pairs(binary, Path(remaining) / FASTA, tmp, size.sequences, f"the {size.sequences} sequences of {remaining}",
                                  settings=settings, threads=threads, mem_mb=mem_mb)  # fmt: skip
        _write_pairs(con, "pairs", pairs)
        con.execute("CREATE TABLE reps AS SELECT DISTINCT representative AS checksum FROM pairs")
        write_batches(arrow_batches(con, "SELECT checksum FROM reps ORDER BY checksum"), out / REPRESENTATIVES, NAMES_SCHEMA)
        keys = con.execute(f"SELECT l.key FROM ({_lookup_sql(db)}) l SEMI JOIN reps r ON l.name = r.checksum ORDER BY l.key").fetchnumpy()["key"]
        n_reps = con.execute("SELECT count(*) FROM reps").fetchall()[0][0]
        if len(keys) != n_reps:
            raise InternalError(f"expected the {n_reps} representatives in {db}.lookup, found {len(keys)}")
        reps = _subset_fasta(binary, db, keys, out / FASTA)
        _write_counts(out, reps)
    log.info("%d sequences in %d clusters", size.sequences, reps.sequences)
    return reps.sequences


def _check_once(con: Any, table: str, expected: int, what: str) -> None:
    """Every sequence a member exactly once in ``table``, each representative its own."""
    n, members, reps, selfless = con.execute(f"""SELECT count(*), count(DISTINCT member), count(DISTINCT representative),
        count(DISTINCT representative) FILTER (WHERE representative NOT IN (SELECT member FROM {table} WHERE member = representative))
        FROM {table}""").fetchall()[0]  # fmt: skip
    if n != expected or members != expected or selfless:
        raise InternalError(f"expected {what} each in one cluster, found {n} rows for {members} sequences "
                            f"({selfless} of {reps} representatives not their own member)")  # fmt: skip


def assign_segment(binary: str, round_dir: str | os.PathLike[str], remaining: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                   pairs: str | os.PathLike[str], *, settings: MmseqsSettings, threads: int, mem_mb: int | None = None,
                   scratch: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """Assign what is left of a later segment (``remaining``) to a round's representatives
    (``round_dir``): linclust over both; a sequence whose representative there is one of
    the round's is assigned to it. ``pairs`` gets the assignments, ``out_dir`` (atomic)
    the sequences still left (``sequences.fasta``, ``counts.json``); returns the number
    assigned."""
    reps, left = counts_size(round_dir), counts_size(remaining)
    with atomic_dir(out_dir) as out, _working(scratch, out_dir) as tmp:
        if reps.sequences == 0 or left.sequences == 0:
            empty_output(pairs, PAIRS_SCHEMA)
            _pass_through(Path(remaining), out)
            return 0
        both = tmp / "both.fasta"  # one file: mmseqs links the database's data to it
        with open(both, "wb") as fh:
            for part in (Path(round_dir) / FASTA, Path(remaining) / FASTA):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
        what = f"the {reps.sequences} representatives and {left.sequences} sequences left"
        db, con = _linclust_pairs(binary, both, tmp, reps.sequences + left.sequences, what, settings=settings, threads=threads, mem_mb=mem_mb)
        con.execute(f"CREATE TABLE reps AS SELECT checksum AS name FROM read_parquet({sql_path(Path(round_dir) / REPRESENTATIVES)})")
        con.execute("""CREATE TABLE assigned AS SELECT p.representative, p.member FROM pairs p
                       SEMI JOIN reps r ON p.representative = r.name ANTI JOIN reps m ON p.member = m.name""")
        n = con.execute("SELECT count(*) FROM assigned").fetchall()[0][0]
        _write_pairs(con, "assigned", pairs)
        keys = con.execute(f"""SELECT l.key FROM ({_lookup_sql(db)}) l ANTI JOIN reps r ON l.name = r.name
                               ANTI JOIN assigned a ON l.name = a.member ORDER BY l.key""").fetchnumpy()["key"]  # fmt: skip
        still = _subset_fasta(binary, db, keys, out / FASTA)
        if n + still.sequences != left.sequences:
            raise InternalError(f"expected the {left.sequences} sequences of {remaining} assigned or left, found {n} assigned and {still.sequences} left")
        _write_counts(out, still)
    log.info("%d of %d sequences assigned to %d representatives", n, left.sequences, reps.sequences)
    return int(n)


def merge_segments(sequences: str | os.PathLike[str], pairs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, threads: int,
                   mem_mb: int | None = None, scratch: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """``mmseqs/clusters.parquet`` of the rounds' clusters and the assignments (``pairs``:
    their files); every unique sequence of ``sequences`` must be in exactly one (else
    nothing is written). Returns its row count."""
    with _working(scratch, out) as tmp:
        con = _connection(tmp, mem_mb, threads)
        con.execute(f"CREATE VIEW pairs AS SELECT representative, member FROM read_parquet([{', '.join(sql_path(f) for f in pairs)}])")
        expected = con.execute(f"SELECT count(*) FROM read_parquet({sql_path(sequences)})").fetchall()[0][0]
        _check_once(con, "pairs", expected, f"the {expected} unique sequences of {sequences}")
        strangers = con.execute(f"SELECT count(*) FROM pairs ANTI JOIN read_parquet({sql_path(sequences)}) s ON pairs.member = s.checksum").fetchall()[0][0]
        if strangers:
            raise InternalError(f"expected the members of every segment's clusters to be sequences of {sequences}, found {strangers} others")
        return write_seq_clusters(con, "SELECT * FROM pairs", out)
