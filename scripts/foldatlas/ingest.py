"""Ingest: validate every record of one FASTA file into a Parquet part.

One part per input file, so files are read in parallel; deduplication across files
happens afterwards (:mod:`foldatlas.chunking`). Inside one file, the reader splits the
decompressed text into groups of records (one ~8 MiB block each) and validation of the
groups can run in worker threads (``workers``; the heavy parts release the GIL), in
order, so a single large file uses every core it is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import duck, faults
from .atomic import atomic_dir
from .buckets import bucket_names
from .errors import InternalError, InvalidRecordError
from .fasta import (
    ALPHABET,
    NONSTANDARD_RESIDUES,
    WHITESPACE,
    TextStream,
    decode_header,
    iter_record_groups,
    too_long_reason,
    too_short_reason,
    validate_sequence,
)
from .inputs import InputCount, InputCounter, check_parts, write_count
from .settings import IngestSettings
from .status import Status
from .tables import PART_SCHEMA, write_batches

__all__ = ["read_fasta_file", "validate_group", "write_bucket_parts", "bucket_part"]

log = logging.getLogger("foldatlas.ingest")

_STATUS_NAMES = pa.array([Status.OK, Status.EMPTY, Status.INVALID_CHARACTERS, Status.TOO_SHORT, Status.TOO_LONG], pa.string())
_OK, _EMPTY, _INVALID, _SHORT, _LONG = range(5)  # indices into _STATUS_NAMES


def _translation(classes: dict[bytes, int], default: int) -> bytes:
    """A ``bytes.translate`` table mapping every byte of each key to its class."""
    table = bytearray([default]) * 256
    for chars, value in classes.items():
        for c in chars:
            table[c] = value
    return bytes(table)


# Byte classes, computed with bytes.translate (a C loop, several times faster than a
# NumPy table lookup): whitespace is dropped; residues are classified after dropping.
_WS = _translation({WHITESPACE: 1}, 0)
_STD, _NONSTD_BIT, _INVALID_CLASS, _LOWER_BIT = 0, 1, 2, 4
_CLASS = _translation(
    {
        ALPHABET: _STD,
        NONSTANDARD_RESIDUES: _NONSTD_BIT,
        ALPHABET.lower(): _LOWER_BIT,
        NONSTANDARD_RESIDUES.lower(): _LOWER_BIT | _NONSTD_BIT,
    },
    _INVALID_CLASS,
)
_NL, _GT, _STAR, _CR = 10, 62, 42, 13
_ID_PATTERN = r"^[ \t\r\n\v\f]*(?P<id>[^ \t\r\n\v\f]*)"


def _count_in(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of the sorted ``positions`` fall in [starts[k], ends[k]) for every k."""
    return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated indices of the ranges [starts[k], starts[k] + lengths[k])."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def _binary(data: np.ndarray | bytes, offsets: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    n = len(offsets) - 1
    bitmap = None
    nulls = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
        nulls = int(n - valid.sum())
    return pa.Array.from_buffers(pa.binary(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)


_local = threading.local()


def _md5(sequences: pa.Array) -> pa.Array:
    """Hex MD5 of every non-null sequence, computed by DuckDB (vectorised, outside the GIL).

    Each thread keeps one in-memory DuckDB connection: opening one costs about 10 ms,
    as much as hashing a whole group.
    """
    con = getattr(_local, "duckdb", None)
    if con is None:
        con = _local.duckdb = duck.connect()
    con.register("seqs", pa.table({"s": sequences}))
    out = con.sql("SELECT md5(s) AS c FROM seqs").arrow()
    col = out.column("c") if isinstance(out, pa.Table) else out.read_all().column("c")
    con.unregister("seqs")
    return col.combine_chunks().cast(pa.string())


@dataclass(frozen=True)
class _Bounds:
    """Byte positions of every record of a group (NumPy int64 arrays, one entry per record)."""

    rec_start: np.ndarray  # the record's '>'
    rec_end: np.ndarray  # the newline before the next '>' (or the end of the group)
    hdr_end: np.ndarray  # end of the header line, trailing CR excluded
    body_start: np.ndarray  # first byte after the header's newline
    lines: np.ndarray  # 1-based line of each header

    @property
    def hdr_start(self) -> np.ndarray:
        return self.rec_start + 1


def _record_bounds(a: np.ndarray, start_line: int) -> tuple[_Bounds, np.ndarray, np.ndarray]:
    """Record and header boundaries of a group; also the newline mask and positions."""
    n_bytes = len(a)
    is_nl = a == _NL
    nl = np.flatnonzero(is_nl)
    after = nl + 1
    gt = after[(after < n_bytes) & (a[np.minimum(after, n_bytes - 1)] == _GT)]
    rec_start = np.concatenate([[0], gt]).astype(np.int64)
    rec_end = np.concatenate([gt - 1, [n_bytes]]).astype(np.int64)
    k = np.searchsorted(nl, rec_start)
    first_nl = nl[np.minimum(k, len(nl) - 1)] if len(nl) else rec_end
    hdr_end = np.where(k < len(nl), np.minimum(first_nl, rec_end), rec_end)
    hdr_start = rec_start + 1
    hdr_end_trim = np.where((hdr_end > hdr_start) & (a[np.maximum(hdr_end - 1, 0)] == _CR), hdr_end - 1, hdr_end)
    body_start = np.minimum(hdr_end + 1, rec_end)
    return _Bounds(rec_start, rec_end, hdr_end_trim, body_start, start_line + k), is_nl, nl


def _normalised(a: np.ndarray, piece: bytes, b: _Bounds, is_nl: np.ndarray, nl: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The normalised sequences of a group, concatenated, and each one's length.

    Body bytes that are not whitespace, with one trailing ``*`` dropped (upper-casing
    is done by the caller only when a lower-case letter is present)."""
    # the usual case: no whitespace but newlines inside sequences (all whitespace is <= 32)
    if int(_count_in(np.flatnonzero(a <= 32), b.body_start, b.rec_end).sum()) == int(_count_in(nl, b.body_start, b.rec_end).sum()):
        drop, dropped = is_nl, nl
    else:
        drop = np.frombuffer(bytearray(piece.translate(_WS)), dtype=np.bool_)
        dropped = np.flatnonzero(drop)
    length = (b.rec_end - b.body_start) - _count_in(dropped, b.body_start, b.rec_end)
    drop[_ranges(b.rec_start, b.body_start - b.rec_start)] = True  # '>', header and its newline
    seq = a[~drop]
    last = np.cumsum(length) - 1
    star = (length > 0) & (seq[np.maximum(last, 0)] == _STAR) if len(seq) else np.zeros(len(length), bool)
    if star.any():
        keep = np.ones(len(seq), dtype=bool)
        keep[last[star]] = False
        seq = seq[keep]
        length = length - star
    return seq.tobytes(), length


def _classify(seq_bytes: bytes, length: np.ndarray, min_length: int, max_length: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Upper-cased sequences, each record's status code and its count of non-standard residues."""
    # one pass finds every residue that is not a standard upper-case one (rare)
    cls = np.frombuffer(seq_bytes.translate(_CLASS), dtype=np.uint8)
    special = np.flatnonzero(cls)
    special_class = cls[special]
    if np.any(special_class & _LOWER_BIT):
        seq_bytes = seq_bytes.upper()
    seq_off = _offsets(length)
    starts, ends = seq_off[:-1].astype(np.int64), seq_off[1:].astype(np.int64)
    n_invalid = _count_in(special[special_class == _INVALID_CLASS], starts, ends)
    n_nonstd = _count_in(special[(special_class & _NONSTD_BIT) != 0], starts, ends)
    code = np.full(len(length), _OK, dtype=np.int8)
    code[length > max_length] = _LONG
    code[length < min_length] = _SHORT
    code[n_invalid > 0] = _INVALID
    code[length == 0] = _EMPTY
    n_nonstd[code == _INVALID] = 0
    return seq_bytes, code, n_nonstd


def _reasons(code: np.ndarray, length: np.ndarray, piece: bytes, b: _Bounds, min_length: int, max_length: int) -> np.ndarray:
    """The ``reason`` of every record (empty for ok); invalid ones name their characters."""
    reasons = np.full(len(code), "", dtype=object)
    reasons[code == _EMPTY] = "no residues"
    for i in np.flatnonzero(code == _SHORT):
        reasons[i] = too_short_reason(int(length[i]), min_length)
    for i in np.flatnonzero(code == _LONG):
        reasons[i] = too_long_reason(int(length[i]), max_length)
    for i in np.flatnonzero(code == _INVALID):
        reasons[i] = validate_sequence(piece[b.body_start[i] : b.rec_end[i]], min_length=min_length, max_length=max_length).reason
    return reasons


def _headers(a: np.ndarray, piece: bytes, b: _Bounds) -> tuple[pa.Array, pa.Array]:
    """The ``id`` and ``header`` columns of a group."""
    hdr_len = b.hdr_end - b.hdr_start
    headers_bin = _binary(a[_ranges(b.hdr_start, hdr_len)], _offsets(hdr_len))
    try:
        headers = headers_bin.cast(pa.string())
        return pc.struct_field(pc.extract_regex(headers, _ID_PATTERN), [0]), headers
    except pa.ArrowInvalid:  # some header is not UTF-8: decode this group record by record
        pairs = [decode_header(piece[s:e]) for s, e in zip(b.hdr_start, b.hdr_end)]
        return pa.array([p[0] for p in pairs], pa.string()), pa.array([p[1] for p in pairs], pa.string())


def _sequence_column(seq_bytes: bytes, length: np.ndarray, code: np.ndarray) -> pa.Array:
    """Sequences as strings; null where the record has none to fold (empty or invalid)."""
    has_seq = (code == _OK) | (code == _SHORT) | (code == _LONG)
    seq_off = _offsets(length)
    if has_seq.all():
        return _binary(seq_bytes, seq_off).cast(pa.string())
    # keep only the bytes of valid-alphabet sequences, so the column is ASCII
    seq = np.frombuffer(seq_bytes, dtype=np.uint8)
    kept = np.where(has_seq, length, 0)
    return _binary(seq[_ranges(seq_off[:-1].astype(np.int64)[has_seq], length[has_seq])], _offsets(kept), valid=has_seq).cast(pa.string())


def validate_group(
    piece: bytes,
    start_index: int,
    start_line: int,
    source: str,
    source_index: int,
    min_length: int,
    max_length: int,
    fail: bool,
) -> pa.RecordBatch:
    """Validate one group of records (see :func:`~foldatlas.fasta.iter_record_groups`).

    This is the hot path of ingest, so it works on the whole group at once: record and
    header boundaries, whitespace removal, upper-casing, the trailing ``*``, alphabet
    checks and counts are NumPy array operations and ``bytes.translate`` byte-class
    passes (C loops), with no Python loop per record (only invalid records, which need
    a reason naming their characters, are looked at one by one, with
    :func:`~foldatlas.fasta.validate_sequence`). The result is the same as calling that
    function on every record (tested against it on random input). MD5 checksums of the
    sequences are computed by DuckDB, outside the GIL, so worker threads run in
    parallel. Records are numbered from ``start_index``.
    """
    a = np.frombuffer(piece, dtype=np.uint8)
    b, is_nl, nl = _record_bounds(a, start_line)
    seq_bytes, length = _normalised(a, piece, b, is_nl, nl)
    seq_bytes, code, n_nonstd = _classify(seq_bytes, length, min_length, max_length)
    reasons = _reasons(code, length, piece, b, min_length, max_length)
    ids, headers = _headers(a, piece, b)
    if fail:
        bad = np.flatnonzero((code == _EMPTY) | (code == _INVALID))
        if len(bad):
            i = int(bad[0])
            raise InvalidRecordError(source, int(b.lines[i]), ids[i].as_py(), reasons[i])
    sequences = _sequence_column(seq_bytes, length, code)
    n_rec = len(code)
    arrays = {
        "checksum": _md5(sequences),
        "source": pa.array([source] * n_rec, pa.string()),
        "source_index": pa.array(np.full(n_rec, source_index, dtype=np.int32)),
        "record_index": pa.array(np.arange(start_index, start_index + n_rec, dtype=np.int64)),
        "line": pa.array(b.lines.astype(np.int64)),
        "id": ids,
        "header": headers,
        "length": pa.array(length.astype(np.int32)),
        "n_nonstandard": pa.array(n_nonstd.astype(np.int32)),
        "status": _STATUS_NAMES.take(pa.array(code)),
        "reason": pa.array(reasons.tolist(), pa.string()),
        "sequence": sequences,
    }
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in PART_SCHEMA], schema=PART_SCHEMA)


def _validate_task(args: tuple) -> pa.RecordBatch:
    return validate_group(*args)


def _batches(groups: Iterator[tuple[int, bytes]], source: str, source_index: int, *, min_length: int, max_length: int, fail: bool, workers: int) -> Iterator[pa.RecordBatch]:
    tasks = ((piece, 0, line, source, source_index, min_length, max_length, fail) for line, piece in groups)
    if workers > 1:
        pool = ThreadPoolExecutor(max_workers=workers)
        pending: list = []
        try:
            for task in tasks:
                pending.append(pool.submit(_validate_task, task))
                if len(pending) > 2 * workers:  # bounded look-ahead keeps memory flat
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for task in tasks:
            yield _validate_task(task)


def _numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Give the groups' records their index in the file (groups are validated from 0)."""
    column = PART_SCHEMA.get_field_index("record_index")
    index = 0
    for batch in batches:
        n = batch.num_rows
        yield batch.set_column(column, PART_SCHEMA.field(column), pa.array(np.arange(index, index + n, dtype=np.int64)))
        index += n


def _counted(batches: Iterator[pa.RecordBatch], counts: Counter[str], source: str) -> Iterator[pa.RecordBatch]:
    started = time.monotonic()
    n = 0
    last = started
    for batch in batches:
        vc = batch.column("status").value_counts()
        for item in vc.to_pylist():
            counts[item["values"]] += item["counts"]
        n += batch.num_rows
        now = time.monotonic()
        if now - last > 30:
            log.info("%s: %d records read (%.0f records/s)", source, n, n / (now - started))
            last = now
        yield batch
        faults.kill_point("read_fasta_batch")  # the batch is written: a kill here leaves a half-written part


def read_fasta_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    source: str,
    source_index: int,
    settings: IngestSettings,
    workers: int | None = None,
    count_out: str | os.PathLike[str] | None = None,
    digits: int = 0,
) -> Counter[str]:
    """Validate every record of ``path`` and write them, in file order, to the part ``out``
    (with ``digits``, a folder of one part per checksum bucket: :func:`write_bucket_parts`).

    Parameters
    ----------
    path
        The file to read (plain, gzip or Zstandard, read to a verified end).
    out
        Parquet part with :data:`~foldatlas.tables.PART_SCHEMA`, written atomically.
    source, source_index
        How the file is named in ``records.parquet`` (the configured name, and its
        position in the expanded input list).
    settings
        Length bounds (inclusive, after normalisation) and ``on_invalid``: ``skip``
        records empty and invalid records with their reason; ``fail`` raises
        :class:`~foldatlas.errors.InvalidRecordError` naming file, line and id.
    workers
        Threads validating record groups (default ``settings.threads``; 1: in the
        calling thread).
    count_out
        Where to write the file's independent count (:mod:`foldatlas.inputs`), made
        from the decompressed text as it is read; the part's records must equal it
        (:class:`~foldatlas.errors.AccountingError` otherwise).
    digits
        ``ingest.bucket_digits``: 0 writes one part; 1 or 2 write the folder ``out`` of
        16 or 256 parts, one per checksum bucket, for the planning jobs of each bucket.

    Returns
    -------
    collections.Counter
        Records per status.
    """
    counts: Counter[str] = Counter()
    stream, counter = TextStream(), InputCounter()
    groups = iter_record_groups(path, display_name=source, tap=counter.update, stream=stream)
    batches = _batches(
        groups, source, source_index,
        min_length=settings.min_length, max_length=settings.max_length,
        fail=settings.on_invalid == "fail", workers=settings.threads if workers is None else workers,
    )  # fmt: skip
    n = _write_part(_counted(_numbered(batches), counts, source), out, digits)
    count = counter.result(source_index=source_index, source=source, stream=stream)
    _check_count(count, n, out)
    if count_out is not None:
        write_count(count, count_out)
    log.info("%s: %d records: %s (%s, %d bytes, %d bytes of text, SHA-256 %s)", source, n, dict(sorted(counts.items())), count.format, count.file_bytes, count.text_bytes, count.text_sha256)
    return counts


def _write_part(records: Iterator[pa.RecordBatch], out: str | os.PathLike[str], digits: int) -> int:
    """A temporary part: one file, or a folder of one file per checksum bucket."""
    if digits:
        return write_bucket_parts(records, out, digits)
    return write_batches(records, out, PART_SCHEMA, compression="none", row_group_size=1 << 16)


def _check_count(count: InputCount, n: int, part: str | os.PathLike[str]) -> None:
    """The part must hold as many records as the independent count found headers."""
    try:
        check_parts([count], {count.source_index: n}, "its validated part")
    except Exception:
        if Path(part).is_dir():
            shutil.rmtree(part, ignore_errors=True)
        Path(part).unlink(missing_ok=True)
        raise


def bucket_part(folder: str | os.PathLike[str], bucket: str) -> Path:
    """The part of one checksum bucket in a folder written by :func:`write_bucket_parts`."""
    return Path(folder) / f"{bucket}.parquet"


#: Bytes of records held for all buckets together before they are written: at 256
#: buckets and ~400 bytes a record, a row group holds about 1,000 records.
_BUCKET_BUFFER_BYTES = 128 << 20


def write_bucket_parts(batches: Iterator[pa.RecordBatch], folder: str | os.PathLike[str], digits: int) -> int:
    """Write records (in file order) into one part per checksum bucket of ``digits`` hex
    digits, each in file order: the folder ``folder`` (written whole, atomically) holds
    ``<bucket>.parquet`` for every bucket, empty ones included. A record without a
    checksum (empty or invalid) goes to the first bucket, as the accounting counts it.
    Returns the number of records."""
    names = bucket_names(digits)
    n = 0
    with atomic_dir(folder) as staging, contextlib.ExitStack() as stack:
        writers = [stack.enter_context(pq.ParquetWriter(bucket_part(staging, b), PART_SCHEMA, compression="none")) for b in names]
        held: list[list[pa.RecordBatch]] = [[] for _ in names]
        size = 0

        def flush() -> None:
            for w, pending in zip(writers, held):
                if pending:
                    w.write_table(pa.Table.from_batches(pending, PART_SCHEMA))
                    pending.clear()

        for batch in batches:
            batch = pa.Table.from_batches([batch]).select(PART_SCHEMA.names).cast(PART_SCHEMA).combine_chunks().to_batches()[0] if batch.num_rows else batch
            if not batch.num_rows:
                continue
            which = _bucket_numbers(batch.column("checksum"), digits)
            order = np.argsort(which, kind="stable")
            bounds = np.searchsorted(which[order], np.arange(len(names) + 1))
            for k in np.flatnonzero(np.diff(bounds)):
                held[k].append(batch.take(pa.array(order[bounds[k] : bounds[k + 1]])))
                size += held[k][-1].nbytes
            n += batch.num_rows
            if size >= _BUCKET_BUFFER_BYTES:
                flush()
                size = 0
        flush()
    return n


def _bucket_numbers(checksums: pa.Array, digits: int) -> np.ndarray:
    """The bucket of each checksum as a number (its first ``digits`` hex digits); 0 for
    a null checksum."""
    prefix = pc.cast(pc.fill_null(pc.utf8_slice_codeunits(checksums, 0, digits), "0" * digits), pa.binary())
    offsets = np.frombuffer(prefix.buffers()[1], dtype=np.int32)[prefix.offset : prefix.offset + len(prefix) + 1]
    raw = np.frombuffer(prefix.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    if len(raw) != len(prefix) * digits:
        raise InternalError(f"expected checksums of at least {digits} hex digits, found shorter ones")
    return _HEX_VALUE[raw.reshape(-1, digits)] @ (16 ** np.arange(digits - 1, -1, -1))


_HEX_VALUE = np.zeros(256, dtype=np.int64)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
