"""Planning one checksum bucket a job (``ingest.bucket_digits`` > 0).

At 10^9 records one planning job would deduplicate, sort and cut everything on one node
for hours (README "Scale"). Identical sequences share a checksum, so deduplication
within a checksum bucket is exact; so are the anti-join against the store's keys and
the length sort within it, and chunks keep to one bucket anyway. So:

1. ``read_fasta`` writes each input file's records as one part per bucket
   (:func:`foldatlas.ingest.write_bucket_parts`);
2. one ``plan_bucket`` job per bucket (:func:`plan_bucket`) runs
   :func:`foldatlas.chunking.plan_chunks` over that bucket's parts of every file: its
   records (duplicates marked), its unique sequences, and its chunks numbered from the
   store's next chunk (above every chunk the store holds, so its own are told apart);
3. the ``plan_chunks`` checkpoint (:func:`number_bucket_plans`) checks the records of all
   buckets against the input files' independent counts, numbers the chunks after the
   store's last one in bucket order, links the chunk files under their numbers, and
   writes ``records.parquet`` and ``sequences.parquet`` by streaming the buckets' files
   one after the other: no sort, no join, no deduplication. The plan is the one a
   single job makes with ``chunks.bucket_digits`` of these digits (the same chunks,
   numbers, contents and sequences); ``records.parquet`` is in bucket order, then
   input order, instead of input order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import duck
from .atomic import atomic_dir, write_json
from .buckets import bucket_names
from .chunking import ChunkPlan, plan_chunks, read_plan, write_plan
from .errors import InternalError, StaleOutputError
from .inputs import KEY_SUMS_SQL, InputCount, check_keys, check_parts, gather_counts, read_count
from .ingest import bucket_part
from .layout import BUCKET_DIGITS, PLAN_FILE, RELEASE_FILE, StoreLayout, chunk_file_name, chunk_id
from .settings import ChunkSettings
from .store import PlannedRelease, plan_release, reserve_chunks
from .tables import RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_batches

__all__ = ["BucketPlan", "chunk_digits", "plan_bucket", "number_bucket_plans"]

log = logging.getLogger("foldatlas.bucket_plans")

_RECORDS = "records.parquet"
_SEQUENCES = "sequences.parquet"
_CHUNKS = "chunks"
_STREAM_ROWS = 1 << 17


def chunk_digits(setting: int | str, ingest_digits: int) -> int:
    """The hex digits of the buckets a bucketed plan's chunks keep to: those of the
    planning jobs, or more when ``chunks.bucket_digits`` asks for more (``auto`` takes
    the planning jobs' digits: no job sees the whole plan to choose)."""
    return ingest_digits if setting == "auto" else max(int(setting), ingest_digits)


@dataclasses.dataclass(frozen=True)
class BucketPlan:
    """The folder one ``plan_bucket`` job wrote (:meth:`foldatlas.layout.Layout.planned_bucket`)."""

    folder: Path

    @property
    def records(self) -> Path:
        return self.folder / _RECORDS

    @property
    def sequences(self) -> Path:
        return self.folder / _SEQUENCES

    @property
    def chunks(self) -> Path:
        return self.folder / _CHUNKS


def plan_bucket(
    bucket: str,
    parts: Sequence[str | os.PathLike[str]],
    *,
    store: StoreLayout,
    release: str,
    outputs_key: str,
    out: str | os.PathLike[str],
    settings: ChunkSettings,
    ingest_digits: int,
    **kwargs: object,
) -> list[ChunkPlan]:
    """Plan one checksum bucket: :func:`foldatlas.chunking.plan_chunks` over the bucket's
    part of every input file (``parts``: the folders ``read_fasta`` wrote), against the
    store's keys of this bucket, into the folder ``out`` (written whole). Its chunks are
    numbered from the store's next chunk, as if it were the only bucket
    (:func:`number_bucket_plans` numbers them for the release), and keep to
    buckets of :func:`chunk_digits`. ``kwargs`` go to ``plan_chunks`` (``memory_gb``,
    ``threads``, ``scratch_dir``)."""
    if bucket not in bucket_names(ingest_digits) or not ingest_digits:
        raise InternalError(f"expected a checksum bucket of {ingest_digits} hex digits, found {bucket!r}")
    # key.json is checked, not written: 16 or 256 of these jobs run side by side
    planned, known = plan_release(store, release, outputs_key, write_key=False)
    # the store's keys are files of one bucket of BUCKET_DIGITS each: this bucket's only
    mine = [k for k in known if not _is_other_bucket(k.stem, bucket)]
    chunked = dataclasses.replace(settings, bucket_digits=chunk_digits(settings.bucket_digits, ingest_digits))
    with atomic_dir(out) as staging:
        plan = BucketPlan(staging)
        return plan_chunks(
            [bucket_part(p, bucket) for p in parts],
            records_out=plan.records,
            sequences_out=plan.sequences,
            chunks_dir=plan.chunks,
            settings=chunked,
            known=mine,
            # the store's state it planned against: number_bucket_plans checks it is still the store's
            release=dataclasses.asdict(planned),
            **kwargs,  # type: ignore[arg-type]
        )


def _is_other_bucket(stem: str, bucket: str) -> bool:
    """A store bucket file (named by its :data:`~foldatlas.layout.BUCKET_DIGITS` hex
    digits) of another bucket. A file of any other name is read: the anti-join takes
    only the keys that match."""
    return len(stem) == BUCKET_DIGITS and all(c in "0123456789abcdef" for c in stem) and not stem.startswith(bucket)


def number_bucket_plans(
    buckets: Sequence[str | os.PathLike[str]],
    *,
    store: StoreLayout,
    release: str,
    outputs_key: str,
    counts: Sequence[str | os.PathLike[str]],
    records_out: str | os.PathLike[str],
    sequences_out: str | os.PathLike[str],
    chunks_dir: str | os.PathLike[str],
    inputs_out: str | os.PathLike[str],
) -> list[ChunkPlan]:
    """Join the plans of every bucket (``buckets``: the ``plan_bucket`` folders, in
    bucket order) into the release's plan, as :func:`foldatlas.chunking.plan_chunks`
    writes it: ``records_out``, ``sequences_out``, ``chunks_dir`` (replaced whole, its
    chunk files hard links to the buckets') and ``inputs_out``.

    Before anything is written:

    - the records of all buckets are held to the files' independent ``counts``: as many
      per file, numbered 0..n-1 each once (:class:`~foldatlas.errors.AccountingError`
      naming the file);
    - each bucket's records and sequences have checksums of that bucket only (Parquet
      statistics; :class:`~foldatlas.errors.InternalError` otherwise);
    - every bucket was planned against the store as it is now (its release, fingerprint
      and generation): otherwise another run published meanwhile, and its sequences
      would be folded again. The bucket plans are then removed, so that the next run
      plans them again, and :class:`~foldatlas.errors.StaleOutputError` says so.

    Chunks are numbered after the store's last chunk, bucket by bucket, and their
    folders reserved in the store."""
    started = time.monotonic()
    plans = [BucketPlan(Path(b)) for b in buckets]
    _check_records(plans, [read_count(c) for c in counts])
    planned, _ = plan_release(store, release, outputs_key)
    recs = [_release_of(p) for p in plans]
    _check_same_store(plans, recs, planned)
    local = [read_plan(p.chunks / PLAN_FILE) for p in plans]
    digits = {int(r["bucket_digits"]) for r in recs}
    if len(digits) != 1:
        raise InternalError(f"expected buckets planned with one number of hex digits, found {sorted(digits)}")
    # bucket k's chunk c (numbered from its planned first chunk f_k) becomes
    # first + (chunks of buckets before k) + (c - f_k)
    starts = np.cumsum([planned.first_chunk] + [len(x) for x in local]).tolist()
    shifts = [start - int(r["first_chunk"]) for start, r in zip(starts, recs)]
    with atomic_dir(chunks_dir) as staging:
        numbered = [n for p, chunks, r, shift in zip(plans, local, recs, shifts) for n in _link_chunks(p, chunks, int(r["first_chunk"]), shift, staging)]
        write_plan(staging / PLAN_FILE, numbered)
        release_rec = {**dataclasses.asdict(planned), "chunks": [c.chunk for c in numbered], "bucket_digits": digits.pop(), "buckets": [c.bucket for c in numbered]}
        write_json(staging / RELEASE_FILE, release_rec)
        _write_tables(plans, [int(r["first_chunk"]) for r in recs], shifts, records_out, sequences_out)
        gather_counts(counts, inputs_out)
    reserve_chunks(store, [c.chunk for c in numbered])
    log.info("%d buckets: %d chunks numbered from %s (%.1f s)", len(plans), len(numbered), chunk_id(planned.first_chunk), time.monotonic() - started)
    return numbered


def _link_chunks(p: BucketPlan, chunks: Sequence[ChunkPlan], first: int, shift: int, staging: Path) -> list[ChunkPlan]:
    """A bucket's chunks (numbered from ``first``) renumbered by ``shift``, their files
    linked into ``staging`` under the new numbers."""
    if [c.chunk for c in chunks] != list(range(first, first + len(chunks))):
        raise InternalError(f"{p.chunks / PLAN_FILE}: expected chunks numbered from {first}, found {[c.chunk for c in chunks][:10]}")
    numbered = [dataclasses.replace(c, chunk=c.chunk + shift) for c in chunks]
    for old, new in zip(chunks, numbered):
        _link(p.chunks / chunk_file_name(old.id), staging / chunk_file_name(new.id))
    return numbered


def _write_tables(plans: Sequence[BucketPlan], firsts: Sequence[int], shifts: Sequence[int], records_out: str | os.PathLike[str], sequences_out: str | os.PathLike[str]) -> None:
    """The buckets' records and sequences (renumbered) streamed into the two tables, side
    by side: Parquet decoding and encoding run outside the GIL."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = [
            pool.submit(write_batches, _concatenated(p.records for p in plans), records_out, RECORDS_SCHEMA),
            pool.submit(write_batches, _renumbered(plans, firsts, shifts), sequences_out, SEQUENCES_SCHEMA),
        ]
        for f in done:
            f.result()


def _release_of(plan: BucketPlan) -> dict:
    return json.loads((plan.chunks / RELEASE_FILE).read_text())


def _check_records(plans: Sequence[BucketPlan], counts: Sequence[InputCount]) -> None:
    """Every file's records over all buckets: as many as its independent count, numbered
    0..n-1 each once; each bucket's records and sequences within the bucket."""
    with duck.connect(None, memory_gb=1.0) as con:
        table = f"read_parquet({duck.sql_paths(p.records for p in plans)})"
        found = con.execute(KEY_SUMS_SQL.format(table=table)).fetchall()
    what = "the plan of all buckets"
    check_parts(counts, {int(i): int(n) for i, n, *_ in found}, what)
    check_keys(counts, {int(i): [int(x) for x in sums] for i, _, *sums in found}, what)
    for p in plans:
        for path in (p.records, p.sequences):
            _check_bucket_range(path, p.folder.name)


def _check_bucket_range(path: Path, bucket: str) -> None:
    """The checksums of a bucket's file all start with ``bucket`` (from the row groups'
    statistics; a row group without them is read)."""
    f = pq.ParquetFile(path)
    col = f.schema_arrow.get_field_index("checksum")
    for k in range(f.metadata.num_row_groups):
        stats = f.metadata.row_group(k).column(col).statistics
        if stats is not None and stats.has_min_max:
            ends = {stats.min[: len(bucket)], stats.max[: len(bucket)]}
        else:
            ends = {c[: len(bucket)] for c in f.read_row_group(k, columns=["checksum"]).column(0).drop_null().to_pylist()}
        if ends - {bucket}:
            raise InternalError(f"{path}: expected checksums of bucket {bucket} only, found checksums starting with {sorted(ends - {bucket})} (row group {k})")


def _check_same_store(plans: Sequence[BucketPlan], recs: Sequence[dict], planned: PlannedRelease) -> None:
    """Every bucket was planned against the store as it is now; else remove the bucket
    plans (temporary outputs: the next run makes them again) and say so."""
    now = dataclasses.asdict(planned)
    keys = ("name", "fingerprint", "generation")
    stale = [(p, r) for p, r in zip(plans, recs) if any(r.get(k) != now[k] for k in keys)]
    if not stale:
        return
    p, r = stale[0]
    for q in plans:
        shutil.rmtree(q.folder, ignore_errors=True)
    raise StaleOutputError(
        str(p.folder),
        f"expected bucket plans made against the store as it is now (release {now['name']}, generation {now['generation']}), "
        f"found {len(stale)} made against release {r.get('name')}, generation {r.get('generation')}: another run published a release "
        "while the buckets were planned. The bucket plans are removed: run again, and every bucket is planned against the store as it is",
    )


def _concatenated(paths: Iterator[Path]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        # pre_buffer=False: no read-ahead of whole row groups, so memory stays one batch
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_STREAM_ROWS)


def _renumbered(plans: Sequence[BucketPlan], firsts: Sequence[int], shifts: Sequence[int]) -> Iterator[pa.RecordBatch]:
    """Every bucket's sequences, those in the bucket's new chunks (numbered from its
    first planned chunk, above every chunk the store held) renumbered by its shift; a
    sequence the store folded keeps its chunk."""
    for p, first, shift in zip(plans, firsts, shifts):
        for b in _concatenated(iter([p.sequences])):
            i = b.schema.get_field_index("chunk")
            mine = pc.greater_equal(b.column("chunk"), pa.scalar(first, pa.int32()))
            moved = pc.add(b.column("chunk"), pa.scalar(shift, pa.int32()))
            yield b.set_column(i, b.schema.field(i), pc.if_else(mine, moved, b.column("chunk")))


def _link(source: Path, target: Path) -> None:
    """A hard link (the bucket's folder is temporary), or a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
