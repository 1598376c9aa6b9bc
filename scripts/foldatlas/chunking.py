"""Deduplication across all input files, and length-sorted chunks sized by GPU work,
each within one checksum bucket (``chunks.bucket_digits``).

Both run out of core in DuckDB (a database file in a scratch folder, with a memory
limit), so memory stays bounded whatever the number of records; results stream back
in Arrow batches, sorted by bucket then length, and are cut into chunks by a greedy
pass that starts a new chunk at each bucket (:class:`ChunkCutter`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import duck, faults
from .atomic import atomic_dir, write_json
from .errors import ConfigError, InternalError, StaleOutputError
from .inputs import check_parts, gather_counts, read_count
from .layout import BUCKET_DIGITS, MEMBERS_FILE, PLAN_FILE, RELEASE_FILE, StoreLayout, chunk_file_name, chunk_id, fresh_dir
from .redundancy import RESOLVED_SCHEMA, Redundancy, cluster_sequences, mmseqs_binary, search_representatives, thresholds, write_fasta
from .settings import ChunkSettings
from .store import plan_release, published_files, reserve_chunks
from .status import Status
from .tables import CHUNK_SCHEMA, MEMBERS_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_batches

__all__ = ["ChunkPlan", "ChunkCutter", "assign_chunks", "bucket_digits", "chunk_content", "fold_packages", "plan_chunks", "plan_release_chunks", "read_plan", "write_plan"]

log = logging.getLogger("foldatlas.chunking")

_STREAM_ROWS = 1 << 17
_KEY_SHIFT = 40  # record key = source_index << 40 | record_index (10^12 records per file)
_PLAN_COLUMNS = ("chunk", "n_sequences", "residues", "min_length", "max_length", "est_seconds", "content", "bucket")
#: Least chunks per bucket for ``chunks.bucket_digits: auto`` to split a plan into buckets.
CHUNKS_PER_BUCKET = 16


@dataclass(frozen=True)
class ChunkPlan:
    """Summary of one chunk (a row of ``plan.tsv``)."""

    chunk: int
    n_sequences: int
    residues: int
    min_length: int
    max_length: int
    est_seconds: float
    #: SHA-256 of the chunk's sequence checksums in order (one per line): what its fold
    #: job folds. A chunk planned again with the same content is not folded again.
    content: str
    #: The checksum bucket all its sequences share: their checksums' first
    #: ``chunks.bucket_digits`` hex digits ("" when the plan was not split into buckets).
    bucket: str = ""

    @property
    def id(self) -> str:
        """The chunk's id in file names (``000042``)."""
        return chunk_id(self.chunk)


def assign_chunks(
    costs: np.ndarray,
    *,
    budget: float,
    max_sequences: int,
    state: tuple[int, float, int] = (0, 0.0, 0),
) -> tuple[np.ndarray, tuple[int, float, int]]:
    """Greedy chunk ids for consecutive items with the given costs.

    A chunk takes items while its total cost stays within ``budget`` and its size
    within ``max_sequences``; an item costlier than the budget gets a chunk of its own.
    ``state`` = (current chunk, its cost so far, its size so far) carries the pass
    across batches, so a stream of batches is cut exactly as one array would be.

    Returns the chunk id of every item (int32) and the state after the last item.
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if max_sequences < 1:
        raise ValueError(f"max_sequences must be at least 1, got {max_sequences}")
    n = len(costs)
    out = np.empty(n, dtype=np.int32)
    cum = np.cumsum(costs, dtype=np.float64)
    chunk, used, count = state
    pos = 0
    while pos < n:
        before = cum[pos - 1] if pos else 0.0
        # last index whose cumulative cost still fits in the chunk
        end = int(np.searchsorted(cum, before + (budget - used), side="right"))
        end = min(end, pos + (max_sequences - count), n)
        if end <= pos:
            if count == 0:  # a single item over budget: a chunk of its own
                end = pos + 1
            else:
                chunk, used, count = chunk + 1, 0.0, 0
                continue
        out[pos:end] = chunk
        used += float(cum[end - 1] - before)
        count += end - pos
        pos = end
        if pos < n:  # stopped before the end of the batch: the chunk is full
            chunk, used, count = chunk + 1, 0.0, 0
    return out, (chunk, used, count)


def bucket_digits(setting: int | str, estimated_chunks: float) -> int:
    """The hex digits of the checksum bucket each chunk keeps to (``chunks.bucket_digits``).

    ``setting`` is 0, 1 or 2 (taken as it is) or ``"auto"``: the most digits, at most the
    store's :data:`~foldatlas.layout.BUCKET_DIGITS`, that leave at least
    :data:`CHUNKS_PER_BUCKET` chunks per bucket for ``estimated_chunks`` (0 below 256
    chunks, 1 below 4096, else 2). A bucket's last chunk is partly filled, so splitting a
    small plan would multiply its jobs; at 16 chunks per bucket at most 1 job in 16 is added.

    >>> bucket_digits("auto", 100), bucket_digits("auto", 300), bucket_digits("auto", 10**5)
    (0, 1, 2)
    """
    if setting != "auto":
        digits = int(setting)
        if not 0 <= digits <= BUCKET_DIGITS:
            raise ConfigError(f"config key 'chunks.bucket_digits' = {setting!r}: expected auto or 0 to {BUCKET_DIGITS}", key="chunks.bucket_digits", value=setting)
        return digits
    digits = 0
    while digits < BUCKET_DIGITS and estimated_chunks >= CHUNKS_PER_BUCKET * 16 ** (digits + 1):
        digits += 1
    return digits


def _materialise(con, query: str, scratch: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Write a query's result, in its order, to a scratch Parquet file.

    DuckDB's sort spills to disk under the memory limit and its writer streams, so
    memory stays bounded. Used for the duplicates (a small result) and as the fallback
    of :func:`_stream_sorted`: it needs less memory than streaming (measured at 4M
    records and a 0.5 GB limit: 734 against 957 MiB) but writes and re-reads the whole
    result (the sequences' sort took 2x as long).
    """
    path = scratch / f"{name}.parquet"
    con.execute(f"COPY ({query}) TO {duck.sql_path(path)} (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE {_STREAM_ROWS})")
    return path


class SortOutOfMemory(RuntimeError):
    """DuckDB ran out of memory while streaming a sorted result."""


def _stream_sorted(con, query: str) -> Iterator[pa.RecordBatch]:  # type: ignore[no-untyped-def]
    """Stream a sorted query's result straight from DuckDB, in Arrow batches.

    The fast path (no scratch file): DuckDB's sort spills under the memory limit and
    the peak stays near the limit plus a few hundred MiB whatever the input size
    (measured: 0.5 GB limit, 731 MiB at 1M records, 957 MiB at 4M). Near the limit it
    can run out of memory where :func:`_materialise` would not; callers fall back to it
    (:class:`SortOutOfMemory`).
    """
    try:
        yield from con.sql(query).to_arrow_reader(_STREAM_ROWS)
    except Exception as exc:  # DuckDB raises its own type, pyarrow's stream an OSError
        if "Out of Memory" in str(exc):
            raise SortOutOfMemory(str(exc)) from exc
        raise


def _scan(path: Path) -> Iterator[pa.RecordBatch]:
    """Stream a scratch file written by :func:`_materialise` in Arrow batches, in file
    order, then delete it. (pyarrow, not DuckDB: a DuckDB scan feeding a slow consumer
    buffered past the memory limit at 4M records.)"""
    # pre_buffer=False: no read-ahead of whole row groups, so memory stays one batch
    yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_STREAM_ROWS)
    path.unlink()


def _first_row(path: str | os.PathLike[str]) -> dict | None:
    """source_index and source of a part (from its first record), or None if it is empty."""
    for b in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=1, columns=["source_index", "source"]):
        return b.to_pylist()[0]
    return None


class _DuplicateMarks:
    """The sorted stream of (record key, key of the first record with the same sequence)
    pairs, consumed alongside the records in input order."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self._r = np.zeros(0, dtype=np.int64)
        self._f = np.zeros(0, dtype=np.int64)

    def upto(self, top: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs whose record key is at most ``top``, removed from the stream."""
        while len(self._r) == 0 or self._r[-1] <= top:
            nxt = next(self._batches, None)
            if nxt is None:
                break
            self._r = np.concatenate([self._r, nxt.column("rkey").to_numpy()])
            self._f = np.concatenate([self._f, nxt.column("first_key").to_numpy()])
        cut = int(np.searchsorted(self._r, top, side="right"))
        here = self._r[:cut], self._f[:cut]
        self._r, self._f = self._r[cut:], self._f[cut:]
        return here

    def exhausted(self) -> bool:
        return len(self._r) == 0 and next(self._batches, None) is None


def _mark_duplicates(b: pa.RecordBatch, rkey: np.ndarray, here_r: np.ndarray, here_f: np.ndarray, source_names: pa.Array) -> pa.RecordBatch:
    """Set status ``duplicate`` and its reason on the records ``here_r`` of a batch."""
    pos = np.searchsorted(rkey, here_r)
    if np.any(pos >= len(rkey)) or np.any(rkey[np.minimum(pos, len(rkey) - 1)] != here_r):
        raise InternalError("a duplicate names a record that is not in its part")
    is_dup = np.zeros(len(rkey), dtype=bool)
    is_dup[pos] = True  # pos ascends, as the mask's true values do
    mask = (1 << _KEY_SHIFT) - 1
    first_source = source_names.take(pa.array(here_f >> _KEY_SHIFT))
    first_index = pc.cast(pa.array(here_f & mask), pa.string())
    why = pc.binary_join_element_wise("same sequence as record_index ", first_index, " of ", first_source, "")
    dup_mask = pa.array(is_dup)
    status = pc.if_else(dup_mask, pa.scalar(Status.DUPLICATE.value), b.column("status"))
    reason = pc.replace_with_mask(b.column("reason"), dup_mask, why)
    b = b.set_column(b.schema.get_field_index("status"), "status", status)
    return b.set_column(b.schema.get_field_index("reason"), "reason", reason)


def _records(parts: Sequence[str | os.PathLike[str]], dups: Iterator[pa.RecordBatch], sources: dict[int, str]) -> Iterator[pa.RecordBatch]:
    """Records in input order: each part streamed in order, duplicates marked by a merge
    with the sorted stream of (record key, first record key) pairs."""
    marks = _DuplicateMarks(dups)
    source_names = pa.array([sources.get(i, "") for i in range(max(sources, default=-1) + 1)], pa.string())
    for path in sorted(parts, key=lambda p: (_first_row(p) or {"source_index": 0})["source_index"]):
        # pre_buffer=False: no read-ahead of whole row groups, so memory stays one batch
        for b in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_STREAM_ROWS, columns=list(RECORDS_SCHEMA.names)):
            rkey = (b.column("source_index").to_numpy().astype(np.int64) << _KEY_SHIFT) | b.column("record_index").to_numpy()
            if len(rkey) and np.any(np.diff(rkey) <= 0):
                raise InternalError(f"{path} is not in record order")
            here_r, here_f = marks.upto(int(rkey[-1]) if len(rkey) else -1)
            yield _mark_duplicates(b, rkey, here_r, here_f, source_names) if len(here_r) else b
    if not marks.exhausted():
        raise InternalError("duplicates left over after all records")


_KEYED_VIEW = f"""CREATE VIEW keyed AS
    SELECT * EXCLUDE (sequence), ('0x' || checksum)::UHUGEINT AS key,
           (source_index::BIGINT << {_KEY_SHIFT}) | record_index AS rkey
    FROM parts"""
# the 128-bit key parsed from the hex MD5 makes grouping and joining much faster than
# on 32-character strings
_FIRSTS_TABLE = f"""CREATE TABLE firsts AS
    SELECT key, min(rkey) AS first_key, count(*) AS n_records, any_value(checksum) AS checksum,
           any_value(length) AS length
    FROM keyed WHERE status = '{Status.OK}' GROUP BY key"""
# duplicates only (record key -> key of the first record with that sequence), as a small
# table sorted by record key; records.parquet is then the parts read in order and merged
# with it, with no join or sort over whole records
_DUPLICATES_QUERY = f"""SELECT k.rkey, f.first_key FROM keyed k JOIN firsts f ON k.key = f.key
    WHERE k.status = '{Status.OK}' AND k.rkey <> f.first_key ORDER BY k.rkey"""
_FIRST_RECORDS = f"parts p JOIN firsts f ON ((p.source_index::BIGINT << {_KEY_SHIFT}) | p.record_index) = f.first_key"
_UNRESOLVED = "ANTI JOIN assign a ON a.checksum = f.checksum"


def _bucket_sql(digits: int) -> str:
    """The checksum bucket (its first ``digits`` hex digits) as a number, from the key."""
    return f"(f.key >> {128 - 4 * digits})::INTEGER" if digits else "0"


def _unique_query(digits: int, resolved: bool) -> str:
    """Every unique sequence (with ``resolved``, ``ingest.redundancy``: not the members
    resolved to a representative, table ``assign``), sorted by bucket, length, checksum;
    the store's chunk and release of those it holds."""
    return f"""SELECT f.checksum, p.sequence, p.length, p.n_nonstandard, f.n_records,
            k.chunk AS known_chunk, k.release AS known_release, {_bucket_sql(digits)} AS bucket
        FROM {_FIRST_RECORDS}
        LEFT JOIN known k ON k.checksum = f.checksum
        {_UNRESOLVED if resolved else ""}
        ORDER BY bucket, p.length, f.key"""


def _estimated_chunks(con, settings: ChunkSettings, resolved: bool) -> float:  # type: ignore[no-untyped-def]
    """How many chunks the sequences to fold will make, by the cost model (from their
    lengths' histogram: a small aggregate)."""
    rows = con.execute(f"SELECT f.length, count(*) FROM firsts f ANTI JOIN known k ON k.checksum = f.checksum {_UNRESOLVED if resolved else ''} GROUP BY f.length").fetchall()
    if not rows:
        return 0.0
    lengths, n = (np.array(col, dtype=np.float64) for col in zip(*rows))
    # a sequence costlier than the budget is a chunk of its own, the others fill chunks
    share = np.minimum(1.0, settings.cost.seconds(lengths) / settings.gpu_seconds)
    return max(float(np.sum(share * n)), float(np.sum(n)) / settings.max_sequences)
# the new unique sequences (neither folded nor resolved by a published release), longest
# first, ties by checksum: MMseqs2's input order, which decides its representatives
_NEW_QUERY = f"""SELECT f.checksum, p.sequence, p.length, f.key FROM {_FIRST_RECORDS}
    ANTI JOIN known k ON k.checksum = f.checksum
    ANTI JOIN known_members m ON m.checksum = f.checksum
    ORDER BY p.length DESC, f.key"""
#: The store's keys (the ``keys`` bucket files of every published release): the anti-join of
#: the plan, so that a sequence the store holds is never planned again.
_NO_KEYS = "CREATE VIEW known AS SELECT NULL::VARCHAR AS checksum, NULL::INTEGER AS chunk, NULL::VARCHAR AS release WHERE false"
_NO_MEMBERS = """CREATE VIEW known_members AS SELECT NULL::VARCHAR AS checksum, NULL::VARCHAR AS representative, NULL::DOUBLE AS identity,
    NULL::DOUBLE AS coverage, NULL::DOUBLE AS rep_coverage, NULL::VARCHAR AS release WHERE false"""


def plan_chunks(
    parts: Sequence[str | os.PathLike[str]],
    *,
    records_out: str | os.PathLike[str],
    sequences_out: str | os.PathLike[str],
    chunks_dir: str | os.PathLike[str],
    settings: ChunkSettings,
    memory_gb: float,
    threads: int = 1,
    scratch_dir: str | os.PathLike[str] | None = None,
    counts: Sequence[str | os.PathLike[str]] = (),
    inputs_out: str | os.PathLike[str] | None = None,
    known: Sequence[str | os.PathLike[str]] = (),
    release: Mapping[str, object] | None = None,
    redundancy: Redundancy | None = None,
) -> list[ChunkPlan]:
    """Deduplicate the records of all parts and cut the unique sequences into chunks.

    Writes ``records_out`` (one row per input record, input order, duplicates marked),
    ``sequences_out`` (one row per unique sequence, sorted by checksum bucket, length, checksum) and
    ``chunks_dir`` (replaced whole) with one Parquet file per chunk plus ``plan.tsv``.
    The first record of a sequence in input order (file order, then record order)
    keeps status ``ok``; later identical ones become ``duplicate``. DuckDB works under
    ``memory_gb`` in ``scratch_dir`` (emptied first and removed at the end; by default
    a hidden folder beside ``records_out``); running out of memory there is a
    :class:`~foldatlas.errors.ConfigError` naming ``ingest.memory_gb``.

    ``counts`` are the input files' independent counts (:mod:`foldatlas.inputs`): each
    part must hold exactly its file's counted records
    (:class:`~foldatlas.errors.AccountingError` naming the file otherwise), and they are
    gathered into ``inputs_out``.

    ``known`` are the store's keys (Parquet files: checksum, chunk, release):
    a unique sequence found there keeps that chunk and release in ``sequences.parquet``
    and is not planned again. ``release`` (:class:`foldatlas.store.PlannedRelease` as a
    dict: ``name``, ``first_chunk``, ...) names the new release, numbers its chunks from
    ``first_chunk`` (ids unique across releases) and is written to the chunks folder.

    ``redundancy`` (``ingest.redundancy`` other than ``none``): the new unique sequences
    are clustered (:mod:`foldatlas.redundancy`); only those not resolved to a
    representative are cut into chunks. Every unique sequence keeps its row in
    ``sequences.parquet``: a member with its ``representative``, ``identity`` and
    ``coverage``, and its representative's chunk and release. The members this plan
    resolved are written to ``members.parquet`` in the chunks folder (published with
    the release); members resolved by published releases keep their representative.
    """
    started = time.monotonic()
    if counts:
        _check_counts(parts, counts, inputs_out)
    scratch = fresh_dir(scratch_dir or Path(records_out).parent / ".plan_chunks.scratch")
    try:
        with _memory_limit(memory_gb):
            plans = _plan(parts, scratch, records_out, sequences_out, Path(chunks_dir), settings, memory_gb, threads, started, known, dict(release or {}), redundancy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("%d unique sequences in %d chunks (%.1f s)", sum(p.n_sequences for p in plans), len(plans), time.monotonic() - started)
    return plans


def plan_release_chunks(
    parts: Sequence[str | os.PathLike[str]], *, store: StoreLayout, release: str, outputs_key: str, redundancy: str = "none", mmseqs: str = "mmseqs", **kwargs: Any
) -> list[ChunkPlan]:
    """:func:`plan_chunks` for the store's next release: leave out what its published
    releases hold (:func:`foldatlas.store.plan_release`), number the chunks after every
    chunk folder of the store, and reserve the new chunks' folders there. ``redundancy``
    (``ingest.redundancy``) other than ``none`` resolves members with the program
    ``mmseqs`` (``mmseqs.binary``) against the store's published members and folded
    sequences. ``kwargs`` go to :func:`plan_chunks`."""
    planned, known = plan_release(store, release, outputs_key)
    red = None
    if redundancy != "none":
        red = Redundancy(
            thresholds(redundancy), mmseqs_binary(mmseqs), *(tuple(published_files(store, what)) for what in ("members", "sequences", "structures"))
        )
    plans = plan_chunks(parts, known=known, release=dataclasses.asdict(planned), redundancy=red, **kwargs)
    reserve_chunks(store, [p.chunk for p in plans])
    return plans


def _check_counts(parts: Sequence[str | os.PathLike[str]], counts: Sequence[str | os.PathLike[str]], inputs_out: str | os.PathLike[str] | None) -> None:
    """Every part holds its file's independently counted records; gather the counts."""
    rows: dict[int, int] = {}
    for part in parts:
        first = _first_row(part)
        if first is not None:
            rows[first["source_index"]] = rows.get(first["source_index"], 0) + pq.ParquetFile(part).metadata.num_rows
    read = [read_count(c) for c in counts]
    check_parts(read, rows, "its validated part")
    if inputs_out is not None:
        gather_counts(counts, inputs_out)


@contextlib.contextmanager
def _memory_limit(memory_gb: float) -> Iterator[None]:
    """DuckDB out of memory (after the streaming sort's fallback) as a clear ConfigError."""
    try:
        yield
    except Exception as exc:
        if "Out of Memory" not in str(exc) or isinstance(exc, InternalError):
            raise
        raise ConfigError(
            f"config key 'ingest.memory_gb' = {memory_gb}: DuckDB ran out of memory deduplicating the records "
            f"(expected a limit large enough for this input: raise ingest.memory_gb). DuckDB said: {str(exc).splitlines()[0][:300]}",
            key="ingest.memory_gb",
            value=memory_gb,
        ) from None


def _plan(parts, scratch: Path, records_out, sequences_out, chunks_dir: Path, settings: ChunkSettings, memory_gb: float, threads: int, started: float, known, release: dict, redundancy: Redundancy | None) -> list[ChunkPlan]:  # type: ignore[no-untyped-def]
    con = duck.connect(scratch / "ingest.duckdb", memory_gb=memory_gb, spill_dir=scratch / "spill", threads=threads)
    con.execute(f"CREATE VIEW parts AS SELECT * FROM read_parquet({duck.sql_paths(parts)})")
    con.execute(f"CREATE VIEW known AS SELECT checksum, chunk, release FROM read_parquet({duck.sql_paths(known)})" if known else _NO_KEYS)
    con.execute(_KEYED_VIEW)
    con.execute(_FIRSTS_TABLE)
    if redundancy is not None:
        _resolve_members(con, scratch, redundancy, str(release.get("name", "")), threads)
    sources = {first["source_index"]: first["source"] for first in map(_first_row, parts) if first}
    # the duplicates first (a small sort); then records.parquet and the chunks are
    # independent and written concurrently (DuckDB and Parquet encoding run outside
    # the GIL), with only one DuckDB sort at a time under the memory limit
    dups = _materialise(con, _DUPLICATES_QUERY, scratch, "dups")
    with ThreadPoolExecutor(max_workers=1) as pool:
        records_done = pool.submit(_write_records, parts, dups, sources, records_out, started)
        plans = _write_unique(con, scratch, sequences_out, chunks_dir, settings, release, redundancy is not None)
        records_done.result()
    con.close()
    return plans


def _write_records(parts: Sequence[str | os.PathLike[str]], dups: Path, sources: dict[int, str], out: str | os.PathLike[str], started: float) -> int:
    n = write_batches(_records(parts, _scan(dups), sources), out, RECORDS_SCHEMA)
    log.info("records.parquet: %d records (%.1f s)", n, time.monotonic() - started)
    return n


def _write_unique(con, scratch: Path, sequences_out: str | os.PathLike[str], chunks_dir: Path, settings: ChunkSettings, release: dict, resolved: bool) -> list[ChunkPlan]:  # type: ignore[no-untyped-def]
    """The unique sequences, streamed sorted from DuckDB (its own cursor: a connection is
    not shared between threads) into ``sequences.parquet`` and the chunks. With resolved
    members (``assign``), the chunks take the others, and ``sequences.parquet`` is
    written after the cut, members included with their representative's chunk."""
    digits = bucket_digits(settings.bucket_digits, _estimated_chunks(con, settings, resolved) if settings.bucket_digits == "auto" else 0)
    log.info("chunks keep to checksum buckets of %d hex digits (chunks.bucket_digits: %s)", digits, settings.bucket_digits)
    query, finish, out = _unique_query(digits, resolved), None, sequences_out
    if resolved:
        out = scratch / "unresolved.parquet"
        finish = lambda staging: _write_resolved(con.cursor(), out, sequences_out, staging, settings, str(release.get("name", "")), digits)  # noqa: E731
    try:
        return _write_chunks(_stream_sorted(con.cursor(), query), out, chunks_dir, settings, release, digits, finish)
    except SortOutOfMemory as exc:
        # start the chunks again (they are staged, nothing final was written)
        log.warning("streaming the sorted sequences ran out of memory (%s); sorting to a scratch file instead", str(exc).splitlines()[0])
        return _write_chunks(_scan(_materialise(con.cursor(), query, scratch, "unique")), out, chunks_dir, settings, release, digits, finish)


def _resolve_members(con, scratch: Path, red: Redundancy, name: str, threads: int) -> None:  # type: ignore[no-untyped-def]
    """Table ``assign``: every member resolved to a representative (by a published
    release, or now by :mod:`foldatlas.redundancy`), with the release that resolved it."""
    # published members stay resolved while their representative has a structure and
    # they were not folded themselves since (a release under ingest.redundancy: none)
    con.execute(
        f"""CREATE VIEW known_members AS SELECT m.checksum, m.representative, m.identity, m.coverage, m.rep_coverage, m.release
            FROM read_parquet({duck.sql_paths(red.members)}) m
            SEMI JOIN read_parquet({duck.sql_paths(red.structures)}) s ON s.checksum = m.representative
            ANTI JOIN known k ON k.checksum = m.checksum
            QUALIFY row_number() OVER (PARTITION BY m.checksum ORDER BY m.release DESC, m.representative) = 1"""
        if red.members and red.structures else _NO_MEMBERS
    )  # fmt: skip
    work = scratch / "redundancy"
    work.mkdir()
    new = work / "new.fa"
    n_new = write_fasta(con.cursor().sql(_NEW_QUERY).to_arrow_reader(1 << 16), new)
    # what MMseqs2 resolves: Parquet files written by DuckDB under the plan's memory limit
    found = [work / "none.parquet"]
    pq.write_table(RESOLVED_SCHEMA.empty_table(), found[0])
    if n_new and red.folded:
        folded = work / "folded.fa"
        write_fasta(con.cursor().sql(f"SELECT checksum, sequence FROM read_parquet({duck.sql_paths(red.folded)}) ORDER BY checksum").to_arrow_reader(1 << 16), folded)
        found.append(search_representatives(red.binary, new, folded, work, red.thresholds, threads=threads, con=con.cursor()))
        joined = f"read_parquet({duck.sql_path(found[-1])})"
        n_new = write_fasta(con.cursor().sql(f"SELECT n.* FROM ({_NEW_QUERY}) n ANTI JOIN {joined} j ON j.checksum = n.checksum ORDER BY n.length DESC, n.key").to_arrow_reader(1 << 16), new)
    if n_new > 1:
        found.append(cluster_sequences(red.binary, new, work, red.thresholds, threads=threads, con=con.cursor()))
    con.execute(
        f"""CREATE TABLE assign AS
           SELECT checksum, representative, identity, coverage, rep_coverage, ? AS release FROM read_parquet({duck.sql_paths(found)})
           UNION ALL SELECT checksum, representative, identity, coverage, rep_coverage, release FROM known_members""",
        [name],
    )
    shutil.rmtree(work, ignore_errors=True)


def _write_resolved(con, unresolved: Path, sequences_out: str | os.PathLike[str], staging: Path, settings: ChunkSettings, name: str, digits: int) -> None:  # type: ignore[no-untyped-def]
    """``sequences.parquet`` (the cut sequences and the members, sorted by bucket of
    ``digits``, length, checksum; a member points at its representative's chunk and release) and the
    members this plan resolved (``members.parquet`` in the chunks folder)."""
    c = settings.cost
    est = f"{c.overhead} + p.length * ({c.linear} + p.length * ({c.quadratic} + p.length * {c.cubic}))"
    cut = duck.sql_path(unresolved)
    con.execute(
        f"""CREATE TEMP TABLE members AS
            SELECT f.checksum, p.sequence, p.length, p.n_nonstandard, f.n_records, {est} AS est_seconds,
                   coalesce(k.chunk, u.chunk) AS chunk, coalesce(k.release, u.release) AS release,
                   a.representative, a.identity, a.coverage, a.rep_coverage, a.release AS resolved_by
            FROM {_FIRST_RECORDS} JOIN assign a ON a.checksum = f.checksum
            LEFT JOIN known k ON k.checksum = a.representative
            LEFT JOIN read_parquet({cut}) u ON u.checksum = a.representative"""
    )
    lost = con.execute("SELECT count(*), any_value(checksum), any_value(representative) FROM members WHERE chunk IS NULL").fetchall()[0]
    if lost[0]:
        raise InternalError(f"{lost[0]} members (e.g. {lost[1]}) have a representative ({lost[2]}) that is neither folded by the store nor planned")
    cols = "checksum, sequence, length, n_nonstandard, n_records, est_seconds, chunk, release"
    query = f"""SELECT {cols}, NULL::VARCHAR AS representative, NULL::DOUBLE AS identity, NULL::DOUBLE AS coverage FROM read_parquet({cut})
                UNION ALL SELECT {cols}, representative, identity, coverage FROM members ORDER BY left(checksum, {digits}), length, checksum"""
    write_batches(con.sql(query).to_arrow_reader(_STREAM_ROWS), sequences_out, SEQUENCES_SCHEMA)
    mine = con.sql("SELECT checksum, representative, identity, coverage, rep_coverage, length, resolved_by AS release FROM members WHERE resolved_by = ? ORDER BY checksum", params=[name])
    n = write_batches(mine.to_arrow_reader(_STREAM_ROWS), staging / MEMBERS_FILE, MEMBERS_SCHEMA)
    log.info("%d members resolved to a representative by this plan; %d by published releases", n, con.execute("SELECT count(*) FROM members").fetchall()[0][0] - n)


class ChunkCutter:
    """Cuts the stream of unique sequences, sorted by bucket then length, into chunks of
    at most ``settings.gpu_seconds`` of estimated work and ``settings.max_sequences``
    sequences, each within one bucket (column ``bucket``, the first ``digits`` hex digits
    of the checksums as a number; a stream without it is one bucket).

    :meth:`feed` takes one batch, returns it with ``est_seconds`` and ``chunk`` columns,
    and hands every chunk that is complete to a writer thread (``pool``), so at most a
    few chunks are held in memory; :meth:`finish` writes the last one and returns the plan.
    """

    MAX_QUEUED_WRITES = 4

    def __init__(self, folder: Path, settings: ChunkSettings, pool: ThreadPoolExecutor, *, first_chunk: int = 0, release: str = "", digits: int = 0) -> None:
        self.folder = folder
        self.settings = settings
        self.release = release
        self.digits = digits
        self.plans: list[ChunkPlan] = []
        self._pool = pool
        self._writes: list[Future[None]] = []
        self._pending: list[pa.Table] = []
        self._state: tuple[int, float, int] = (first_chunk, 0.0, 0)
        self._last = -1  # (bucket << 32 | length) of the last sequence fed
        self._bucket = -1  # the bucket of the open chunk

    def _order(self, batch: pa.RecordBatch) -> np.ndarray:
        """The batch's (bucket, length) as one sortable number per row, checked sorted."""
        order = batch.column("length").to_numpy().astype(np.int64)
        if "bucket" in batch.schema.names:
            order |= batch.column("bucket").to_numpy().astype(np.int64) << 32
        elif self.digits:
            raise InternalError(f"expected a bucket column in a stream cut into buckets of {self.digits} hex digits")
        if len(order) and (order[0] < self._last or np.any(np.diff(order) < 0)):
            raise InternalError("unique sequences did not come out sorted by bucket, then length")
        self._last = int(order[-1]) if len(order) else self._last
        return order >> 32

    def _assign(self, est: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Chunk ids of the new sequences: the greedy cut, with a new chunk at each bucket."""
        ids = np.empty(len(est), dtype=np.int32)
        bounds = (np.flatnonzero(np.diff(buckets)) + 1).tolist()
        for s, e in zip([0, *bounds], [*bounds, len(est)]) if len(est) else ():
            if int(buckets[s]) != self._bucket:
                chunk, _, count = self._state
                self._state, self._bucket = ((chunk + 1, 0.0, 0) if count else self._state), int(buckets[s])
            ids[s:e], self._state = assign_chunks(est[s:e], budget=self.settings.gpu_seconds, max_sequences=self.settings.max_sequences, state=self._state)
        return ids

    def feed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Chunk the new sequences of a batch (those without a ``known_chunk``, when the
        batch has that column: the store's earlier releases fold the others)."""
        buckets = self._order(batch)
        est = self.settings.cost.seconds(batch.column("length").to_numpy())
        table = pa.Table.from_batches([batch]).append_column("est_seconds", pa.array(est))
        known = table["known_chunk"].is_valid().to_numpy(zero_copy_only=False) if "known_chunk" in table.column_names else np.zeros(len(est), bool)
        new = np.flatnonzero(~known)
        ids = self._assign(est[new], buckets[new])
        if known.any():
            chunk = table["known_chunk"].to_numpy(zero_copy_only=False).astype(np.float64)
            chunk[new] = ids
            release = pa.array(np.where(known, table["known_release"].to_numpy(zero_copy_only=False), self.release), pa.string())
        else:
            chunk, release = ids, pa.array([self.release] * len(ids), pa.string())
        table = table.append_column("chunk", pa.array(chunk.astype(np.int32))).append_column("release", release)
        for name, type_ in (("representative", pa.string()), ("identity", pa.float64()), ("coverage", pa.float64())):
            table = table.append_column(name, pa.nulls(table.num_rows, type_))
        fresh = table.take(pa.array(new)) if known.any() else table
        # split the new sequences at chunk boundaries; write every chunk that is complete
        bounds = np.flatnonzero(np.diff(ids)) + 1
        for s, e in zip([0, *bounds.tolist()], [*bounds.tolist(), len(ids)]) if len(ids) else ():
            if self._pending and self._pending[-1]["chunk"][0].as_py() != int(ids[s]):
                self._flush()
            self._pending.append(fresh.slice(s, e - s))
        return table.combine_chunks().to_batches()[0]

    def finish(self) -> list[ChunkPlan]:
        self._flush()
        for f in self._writes:
            f.result()
        return self.plans

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending.clear()
        lengths = table["length"].to_numpy()
        bucket = pc.unique(table["bucket"]).to_pylist() if "bucket" in table.column_names else [0]
        if len(bucket) != 1:
            raise InternalError(f"chunk {table['chunk'][0]} holds the checksum buckets {bucket}: expected one")
        plan = ChunkPlan(
            chunk=int(table["chunk"][0].as_py()),
            n_sequences=table.num_rows,
            residues=int(lengths.sum()),
            min_length=int(lengths.min()),
            max_length=int(lengths.max()),
            est_seconds=float(np.sum(table["est_seconds"].to_numpy())),
            content=chunk_content(table["checksum"].to_pylist()),
            bucket=f"{bucket[0]:0{self.digits}x}" if self.digits else "",
        )
        self.plans.append(plan)
        while len(self._writes) >= self.MAX_QUEUED_WRITES:
            self._writes.pop(0).result()
        self._writes.append(self._pool.submit(_write_chunk_file, table, self.folder / chunk_file_name(plan.id)))
        faults.kill_point("plan_chunk_queued")  # staging folder, scratch database and records.parquet half-written


def _write_chunks(batches: Iterator[pa.RecordBatch], sequences_out: str | os.PathLike[str], chunks_dir: Path, settings: ChunkSettings, release: dict, digits: int, finish: Callable[[Path], None] | None = None) -> list[ChunkPlan]:
    """``sequences.parquet`` and the chunks folder (staged, then swapped in whole), each
    chunk within one checksum bucket of ``digits``; ``finish`` writes more into the
    staged folder before the swap."""
    with atomic_dir(chunks_dir) as staging, ThreadPoolExecutor(max_workers=1) as pool:
        cutter = ChunkCutter(staging, settings, pool, first_chunk=int(release.get("first_chunk", 0)), release=str(release.get("name", "")), digits=digits)
        write_batches((cutter.feed(b) for b in batches if b.num_rows), sequences_out, SEQUENCES_SCHEMA)
        plans = cutter.finish()
        write_plan(staging / PLAN_FILE, plans)
        if release:
            # each chunk's bucket: publish_release checks and writes the release one bucket at a time
            write_json(staging / RELEASE_FILE, {**release, "chunks": [p.chunk for p in plans], "bucket_digits": digits, "buckets": [p.bucket for p in plans]})
        if finish is not None:
            finish(staging)
    return plans


def _write_chunk_file(table: pa.Table, path: Path) -> None:
    # uncompressed: chunk files are transient inputs of the fold jobs; amino-acid text
    # barely compresses with a fast codec (1% with lz4), and zstd costs 0.5 s per 1M
    # sequences on the critical path
    pq.write_table(table.select(CHUNK_SCHEMA.names).cast(CHUNK_SCHEMA), path, compression="none")


def fold_packages(plans: Sequence[ChunkPlan], per_job: int) -> dict[str, list[ChunkPlan]]:
    """The plan's chunks in fold packages of ``per_job`` (``fold.chunks_per_job``):
    consecutive chunks of the plan (of similar lengths: the plan is length-sorted within
    each checksum bucket; a package may span two buckets), each
    package named after its first chunk's id."""
    if per_job < 1:
        raise ConfigError(f"config key 'fold.chunks_per_job' = {per_job}: expected at least 1", key="fold.chunks_per_job", value=per_job)
    return {plans[k].id: list(plans[k : k + per_job]) for k in range(0, len(plans), per_job)}


def chunk_content(checksums: Sequence[str]) -> str:
    """The ``content`` of a chunk holding sequences with these checksums, in this order."""
    return hashlib.sha256("".join(f"{c}\n" for c in checksums).encode()).hexdigest()


def write_plan(path: Path, plans: Sequence[ChunkPlan]) -> None:
    """Write ``plan.tsv`` (one row per chunk)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(_PLAN_COLUMNS)
        for p in plans:
            writer.writerow([p.chunk, p.n_sequences, p.residues, p.min_length, p.max_length, f"{p.est_seconds:.3f}", p.content, p.bucket])


def read_plan(path: str | os.PathLike[str]) -> list[ChunkPlan]:
    """Read a ``plan.tsv`` written by :func:`plan_chunks` (a plan of 0.6, without the
    ``bucket`` column, reads with ``bucket`` "": it was not split into buckets).

    Raises
    ------
    StaleOutputError
        When its columns are neither those this version writes nor 0.6's (a plan of an
        earlier foldatlas); the message says to plan again.
    """
    with open(path, newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        if tuple(rows.fieldnames or ()) not in (_PLAN_COLUMNS, _PLAN_COLUMNS[:-1]):
            found = ", ".join(rows.fieldnames or ()) or "nothing"
            raise StaleOutputError(
                str(path), f"expected the columns {', '.join(_PLAN_COLUMNS)}, found {found}: an earlier foldatlas wrote it; delete its folder to plan the chunks again"
            )
        return [
            ChunkPlan(
                chunk=int(r["chunk"]),
                n_sequences=int(r["n_sequences"]),
                residues=int(r["residues"]),
                min_length=int(r["min_length"]),
                max_length=int(r["max_length"]),
                est_seconds=float(r["est_seconds"]),
                content=r["content"],
                bucket=r.get("bucket") or "",
            )
            for r in rows
        ]