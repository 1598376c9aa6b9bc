"""Ingest: validate every record of one FASTA file into a Parquet part.

One part per input file, so files are read in parallel; deduplication across files
happens afterwards (:mod:`foldatlas.chunking`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from .errors import InvalidRecordError
from .fasta import INVALID_STATUSES, decode_header, iter_records, sequence_checksum, validate_sequence
from .tables import PART_SCHEMA, write_batches

__all__ = ["read_fasta_file"]

log = logging.getLogger("foldatlas.ingest")

_BATCH_RECORDS = 1 << 16


def _batches(
    path: str,
    source: str,
    source_index: int,
    *,
    min_length: int,
    max_length: int,
    on_invalid: str,
    counts: Counter[str],
) -> Iterator[pa.RecordBatch]:
    cols: dict[str, list] = {name: [] for name in PART_SCHEMA.names}
    started = time.monotonic()
    for rec in iter_records(path, display_name=source):
        rid, header = decode_header(rec.header)
        v = validate_sequence(rec.body, min_length=min_length, max_length=max_length)
        if on_invalid == "fail" and v.status in INVALID_STATUSES:
            raise InvalidRecordError(source, rec.line, rid, v.reason)
        counts[v.status] += 1
        valid = v.status not in INVALID_STATUSES
        cols["record_index"].append(rec.index)
        cols["line"].append(rec.line)
        cols["id"].append(rid)
        cols["header"].append(header)
        cols["checksum"].append(sequence_checksum(v.sequence) if valid else None)
        cols["length"].append(len(v.sequence))
        cols["n_nonstandard"].append(v.n_nonstandard)
        cols["status"].append(v.status)
        cols["reason"].append(v.reason)
        cols["sequence"].append(v.sequence.decode("ascii") if v.status == "ok" else None)
        if len(cols["record_index"]) >= _BATCH_RECORDS:
            yield _to_batch(cols, source, source_index)
            cols = {name: [] for name in PART_SCHEMA.names}
            n = sum(counts.values())
            log.info("%s: %d records read (%.0f records/s)", source, n, n / max(time.monotonic() - started, 1e-9))
    if cols["record_index"]:
        yield _to_batch(cols, source, source_index)


def _to_batch(cols: dict[str, list], source: str, source_index: int) -> pa.RecordBatch:
    n = len(cols["record_index"])
    arrays = []
    for field in PART_SCHEMA:
        if field.name == "source":
            arrays.append(pa.repeat(pa.scalar(source, pa.string()), n) if hasattr(pa, "repeat") else pa.array([source] * n, pa.string()))
        elif field.name == "source_index":
            arrays.append(pa.array([source_index] * n, pa.int32()))
        else:
            arrays.append(pa.array(cols[field.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=PART_SCHEMA)


def read_fasta_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    source: str,
    source_index: int,
    min_length: int,
    max_length: int,
    on_invalid: str = "skip",
) -> Counter[str]:
    """Validate every record of ``path`` and write them, in file order, to the part ``out``.

    Parameters
    ----------
    path
        The file to read (plain, gzip or Zstandard).
    out
        Parquet part with :data:`~foldatlas.tables.PART_SCHEMA`, written atomically.
    source, source_index
        How the file is named in ``records.parquet`` (the configured name, and its
        position in the expanded input list).
    min_length, max_length
        Inclusive length bounds after normalisation.
    on_invalid
        ``skip`` records empty and invalid records with their reason; ``fail`` raises
        :class:`~foldatlas.errors.InvalidRecordError` naming file, line and id.

    Returns
    -------
    collections.Counter
        Records per status.
    """
    if on_invalid not in ("skip", "fail"):
        raise ValueError(f"on_invalid must be 'skip' or 'fail', got {on_invalid!r}")
    if min_length < 1 or max_length < min_length:
        raise ValueError(f"expected 1 <= min_length <= max_length, got {min_length} and {max_length}")
    counts: Counter[str] = Counter()
    n = write_batches(
        _batches(
            str(path),
            source,
            source_index,
            min_length=min_length,
            max_length=max_length,
            on_invalid=on_invalid,
            counts=counts,
        ),
        out,
        PART_SCHEMA,
        compression="lz4",
    )
    log.info("%s: %d records: %s", source, n, dict(sorted(counts.items())))
    return counts
