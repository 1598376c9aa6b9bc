"""Deduplication across all input files, and length-sorted chunks sized by GPU work.

Both run out of core in DuckDB (a database file in a scratch folder, with a memory
limit), so memory stays bounded whatever the number of records; results stream back
in Arrow batches and are cut into chunks by a greedy pass over the length-sorted
unique sequences.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_path
from .tables import CHUNK_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_batches

__all__ = ["CostModel", "ChunkPlan", "chunk_file_name", "assign_chunks", "plan_chunks"]

log = logging.getLogger("foldatlas.chunking")

_STREAM_ROWS = 1 << 17
_KEY_SHIFT = 40  # record key = source_index << 40 | record_index (10^12 records per file)


@dataclass(frozen=True)
class CostModel:
    """Estimated GPU seconds to fold one sequence of length L.

    ``seconds(L) = overhead + linear*L + quadratic*L**2 + cubic*L**3``. The terms follow
    ESMFold's cost: the ESM-2 language model is linear in L (its attention is a small
    quadratic part), the folding trunk's pair representation is quadratic and its
    triangular updates and attention are cubic. The defaults are rough figures for one
    current data-centre GPU with the default recycles; only their ratios matter for
    balancing chunks, their scale sets the runtime asked of the cluster.
    """

    overhead: float = 0.05
    linear: float = 2.0e-3
    quadratic: float = 5.0e-6
    cubic: float = 2.0e-9

    def seconds(self, length: np.ndarray) -> np.ndarray:
        """Estimated seconds for each length (float64 array of the same shape)."""
        L = np.asarray(length, dtype=np.float64)
        return self.overhead + L * (self.linear + L * (self.quadratic + L * self.cubic))


@dataclass(frozen=True)
class ChunkPlan:
    """Summary of one chunk (a row of ``results/chunks/plan.tsv``)."""

    chunk: int
    n_sequences: int
    residues: int
    min_length: int
    max_length: int
    est_seconds: float


def chunk_file_name(chunk: int) -> str:
    """File name of chunk ``chunk`` under ``results/chunks/`` (``chunk_000042.parquet``)."""
    return f"chunk_{chunk:06d}.parquet"


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


def _connect(scratch: Path, memory_limit_gb: float, threads: int):  # type: ignore[no-untyped-def]
    import duckdb

    con = duckdb.connect(str(scratch / "ingest.duckdb"))
    con.execute(f"SET memory_limit='{memory_limit_gb}GB'")
    con.execute(f"SET temp_directory='{scratch / 'spill'}'")
    con.execute(f"SET threads={int(threads)}")
    # ORDER BY results keep their order when written to a file or streamed
    con.execute("SET preserve_insertion_order=true")
    return con


def _materialise(con, query: str, scratch: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Write a query's result, in its order, to a scratch Parquet file.

    DuckDB's sort spills to disk under the memory limit and its writer streams, so
    memory stays bounded. Used for the duplicates (a small result) and as the fallback
    of :func:`_stream_sorted`: it needs less memory than streaming (measured at 4M
    records and a 0.5 GB limit: 734 against 957 MiB) but writes and re-reads the whole
    result (the sequences' sort took 2x as long).
    """
    path = scratch / f"{name}.parquet"
    con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE {_STREAM_ROWS})")
    return path


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


class SortOutOfMemory(RuntimeError):
    """DuckDB ran out of memory while streaming a sorted result."""


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


def _records(parts: Sequence[str | os.PathLike[str]], dups: Iterator[pa.RecordBatch], sources: dict[int, str]) -> Iterator[pa.RecordBatch]:
    """Records in input order: each part streamed in order, duplicates marked by a merge
    with the sorted stream of (record key, first record key) pairs."""
    columns = [n for n in RECORDS_SCHEMA.names]
    pending_r = np.zeros(0, dtype=np.int64)
    pending_f = np.zeros(0, dtype=np.int64)
    mask = (1 << _KEY_SHIFT) - 1
    source_names = pa.array([sources.get(i, "") for i in range(max(sources, default=-1) + 1)], pa.string())
    for path in sorted(parts, key=lambda p: (_first_row(p) or {"source_index": 0})["source_index"]):
        # pre_buffer=False: no read-ahead of whole row groups, so memory stays one batch
        for b in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_STREAM_ROWS, columns=columns):
            rkey = (b.column("source_index").to_numpy().astype(np.int64) << _KEY_SHIFT) | b.column("record_index").to_numpy()
            if len(rkey) and np.any(np.diff(rkey) <= 0):
                raise RuntimeError(f"internal error: {path} is not in record order")
            top = int(rkey[-1]) if len(rkey) else -1
            while (len(pending_r) == 0 or pending_r[-1] <= top):
                nxt = next(dups, None)
                if nxt is None:
                    break
                pending_r = np.concatenate([pending_r, nxt.column("rkey").to_numpy()])
                pending_f = np.concatenate([pending_f, nxt.column("first_key").to_numpy()])
            cut = int(np.searchsorted(pending_r, top, side="right"))
            here_r, here_f = pending_r[:cut], pending_f[:cut]
            pending_r, pending_f = pending_r[cut:], pending_f[cut:]
            if len(here_r):
                pos = np.searchsorted(rkey, here_r)
                if np.any(pos >= len(rkey)) or np.any(rkey[np.minimum(pos, len(rkey) - 1)] != here_r):
                    raise RuntimeError("internal error: a duplicate names a record that is not in its part")
                is_dup = np.zeros(len(rkey), dtype=bool)
                is_dup[pos] = True  # pos ascends, as the mask's true values do
                first_source = source_names.take(pa.array(here_f >> _KEY_SHIFT))
                first_index = pc.cast(pa.array(here_f & mask), pa.string())
                why = pc.binary_join_element_wise("same sequence as record_index ", first_index, " of ", first_source, "")
                dup_mask = pa.array(is_dup)
                status = pc.if_else(dup_mask, pa.scalar("duplicate"), b.column("status"))
                reason = pc.replace_with_mask(b.column("reason"), dup_mask, why)
                b = b.set_column(b.schema.get_field_index("status"), "status", status)
                b = b.set_column(b.schema.get_field_index("reason"), "reason", reason)
            yield b
    if len(pending_r) or next(dups, None) is not None:
        raise RuntimeError("internal error: duplicates left over after all records")


def plan_chunks(
    parts: Sequence[str | os.PathLike[str]],
    *,
    records_out: str | os.PathLike[str],
    sequences_out: str | os.PathLike[str],
    chunks_dir: str | os.PathLike[str],
    budget_seconds: float,
    max_sequences: int,
    cost_model: CostModel = CostModel(),
    memory_limit_gb: float = 4.0,
    threads: int = 1,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> list[ChunkPlan]:
    """Deduplicate the records of all parts and cut the unique sequences into chunks.

    Writes ``records_out`` (one row per input record, input order, duplicates marked),
    ``sequences_out`` (one row per unique sequence, sorted by length then checksum) and,
    in ``chunks_dir`` (created fresh), one Parquet file per chunk plus ``plan.tsv``.
    The first record of a sequence in input order (file order, then record order)
    keeps status ``ok``; later identical ones become ``duplicate``.
    """
    started = time.monotonic()
    chunks_dir = Path(chunks_dir)
    scratch_parent = Path(scratch_dir) if scratch_dir else Path(records_out).parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".plan-", dir=scratch_parent))
    try:
        con = _connect(scratch, memory_limit_gb, threads)
        files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
        con.execute(f"CREATE VIEW parts AS SELECT * FROM read_parquet([{files}])")
        # the 128-bit key parsed from the hex MD5 makes grouping and joining much faster
        # than on 32-character strings
        con.execute(
            f"""CREATE VIEW keyed AS
                SELECT * EXCLUDE (sequence), ('0x' || checksum)::UHUGEINT AS key,
                       (source_index::BIGINT << {_KEY_SHIFT}) | record_index AS rkey
                FROM parts"""
        )
        con.execute(
            """CREATE TABLE firsts AS
               SELECT key, min(rkey) AS first_key, count(*) AS n_records, any_value(checksum) AS checksum
               FROM keyed WHERE status = 'ok' GROUP BY key"""
        )
        # duplicates only (record key -> key of the first record with that sequence), as a
        # small table sorted by record key; records.parquet is then the parts read in
        # order and merged with it, with no join or sort over whole records
        dups_query = """SELECT k.rkey, f.first_key FROM keyed k JOIN firsts f ON k.key = f.key
                        WHERE k.status = 'ok' AND k.rkey <> f.first_key ORDER BY k.rkey"""
        sources = {}
        for p in parts:
            first = _first_row(p)
            if first:
                sources[first["source_index"]] = first["source"]
        unique_query = f"""
            SELECT f.checksum, p.sequence, p.length, p.n_nonstandard, f.n_records
            FROM parts p JOIN firsts f ON ((p.source_index::BIGINT << {_KEY_SHIFT}) | p.record_index) = f.first_key
            ORDER BY p.length, f.key"""

        # the duplicates first (a small sort); then records.parquet and the chunks are
        # independent and written concurrently (DuckDB and Parquet encoding run outside
        # the GIL), with only one DuckDB sort at a time under the memory limit
        dups = _materialise(con, dups_query, scratch, "dups")

        def write_records() -> int:
            # its own cursor: a DuckDB connection is not shared between threads
            n = write_batches(_records(parts, _scan(dups), sources), records_out, RECORDS_SCHEMA)
            log.info("records.parquet: %d records (%.1f s)", n, time.monotonic() - started)
            return n

        def write_chunks(batches: Iterator[pa.RecordBatch]) -> list[ChunkPlan]:
            return _write_chunks(
                batches,
                sequences_out=sequences_out,
                chunks_dir=chunks_dir,
                budget=budget_seconds,
                max_sequences=max_sequences,
                cost_model=cost_model,
            )

        with ThreadPoolExecutor(max_workers=1) as pool:
            records_done = pool.submit(write_records)
            try:
                plans = write_chunks(_stream_sorted(con.cursor(), unique_query))
            except SortOutOfMemory as exc:
                # start the chunks again (they are staged, nothing final was written)
                log.warning("streaming the sorted sequences ran out of memory (%s); sorting to a scratch file instead", str(exc).splitlines()[0])
                plans = write_chunks(_scan(_materialise(con.cursor(), unique_query, scratch, "unique")))
            records_done.result()
        con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "%d unique sequences in %d chunks (%.1f s)",
        sum(p.n_sequences for p in plans),
        len(plans),
        time.monotonic() - started,
    )
    return plans


def _write_chunks(
    batches: Iterator[pa.RecordBatch],
    *,
    sequences_out: str | os.PathLike[str],
    chunks_dir: Path,
    budget: float,
    max_sequences: int,
    cost_model: CostModel,
) -> list[ChunkPlan]:
    staging = chunks_dir.with_name(f".{chunks_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    plans: list[ChunkPlan] = []
    pending: list[pa.Table] = []
    state = (0, 0.0, 0)

    def flush() -> None:
        if not pending:
            return
        table = pa.concat_tables(pending)
        pending.clear()
        chunk = int(table["chunk"][0].as_py())
        lengths = table["length"].to_numpy()
        plans.append(
            ChunkPlan(
                chunk=chunk,
                n_sequences=table.num_rows,
                residues=int(lengths.sum()),
                min_length=int(lengths.min()),
                max_length=int(lengths.max()),
                est_seconds=float(np.sum(table["est_seconds"].to_numpy())),
            )
        )
        # written by a second thread while the next batches are read; at most a few
        # chunks wait, so memory stays bounded
        while len(writes) >= 4:
            writes.pop(0).result()
        writes.append(writer.submit(_write_chunk_file, table, staging / chunk_file_name(chunk)))

    def sequences() -> Iterator[pa.RecordBatch]:
        nonlocal state
        last_length = -1
        for batch in batches:
            if batch.num_rows == 0:
                continue
            lengths = batch.column("length").to_numpy()
            if lengths[0] < last_length or np.any(np.diff(lengths) < 0):
                raise RuntimeError("internal error: unique sequences did not come out sorted by length")
            last_length = int(lengths[-1])
            est = cost_model.seconds(lengths)
            ids, state = assign_chunks(est, budget=budget, max_sequences=max_sequences, state=state)
            table = pa.Table.from_batches([batch]).append_column("est_seconds", pa.array(est)).append_column(
                "chunk", pa.array(ids)
            )
            # split the batch at chunk boundaries; write every chunk that is complete
            bounds = np.flatnonzero(np.diff(ids)) + 1
            starts = [0, *bounds.tolist()]
            ends = [*bounds.tolist(), len(ids)]
            for s, e in zip(starts, ends):
                if pending and pending[-1]["chunk"][0].as_py() != int(ids[s]):
                    flush()
                pending.append(table.slice(s, e - s))
            yield from table.to_batches()
        flush()

    writes: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=1) as writer:
        write_batches(sequences(), sequences_out, SEQUENCES_SCHEMA)
        for f in writes:
            f.result()
    with open(staging / "plan.tsv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["chunk", "n_sequences", "residues", "min_length", "max_length", "est_seconds"])
        for p in plans:
            writer.writerow([p.chunk, p.n_sequences, p.residues, p.min_length, p.max_length, f"{p.est_seconds:.3f}"])
    # swap the finished folder in; a killed job leaves only the hidden staging folder
    if chunks_dir.exists():
        shutil.rmtree(chunks_dir)
    os.replace(staging, chunks_dir)
    return plans


def _write_chunk_file(table: pa.Table, path: Path) -> None:
    # uncompressed: chunk files are transient inputs of the fold jobs; amino-acid text
    # barely compresses with a fast codec (1% with lz4), and zstd costs 0.5 s per 1M
    # sequences on the critical path
    pq.write_table(table.select(CHUNK_SCHEMA.names).cast(CHUNK_SCHEMA), path, compression="none")


def read_plan(chunks_dir: str | os.PathLike[str]) -> list[ChunkPlan]:
    """Read ``plan.tsv`` written by :func:`plan_chunks`."""
    with open(Path(chunks_dir) / "plan.tsv", newline="") as fh:
        return [
            ChunkPlan(
                chunk=int(r["chunk"]),
                n_sequences=int(r["n_sequences"]),
                residues=int(r["residues"]),
                min_length=int(r["min_length"]),
                max_length=int(r["max_length"]),
                est_seconds=float(r["est_seconds"]),
            )
            for r in csv.DictReader(fh, delimiter="\t")
        ]


def count_statuses(records: str | os.PathLike[str]) -> Counter[str]:
    """Records per status in a ``records.parquet``."""
    table = pq.read_table(records, columns=["status"])
    return Counter(table["status"].to_pylist())
