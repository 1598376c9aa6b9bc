"""Atlas assembly: filter predictions by confidence and write the tables people query.

Outputs (schemas in :mod:`foldatlas.tables`, documented in the README):

- ``metadata.parquet``: one row per *input record*, folded or not, with its outcome;
- ``embeddings.parquet``: one row per (folded sequence, layer);
- ``plddt.parquet``: per-residue pLDDT of every prediction;
- ``structures/``: high-confidence structures in sharded ``.tar.gz`` files with
  ``index.parquet`` for random access (optionally all structures, and a Foldcomp DB);
- ``summary.json``: counts at every step, thresholds, model, versions, timings.

The filter keeps a prediction when ``plddt > filter.min_plddt`` **and**
``ptm > filter.min_ptm`` (strictly greater, as the ESM Atlas's "pLDDT > 0.7 and pTM > 0.7"),
and, by default, it is not flagged as an artefact.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import platform
import shutil
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__, duck
from .archive import FoldcompWriter, IndexEntry, ShardWriter, entry_data, entry_header
from .atomic import atomic_dir, atomic_path
from .errors import StaleOutputError
from .layout import ALL, HIGHCONF, AtlasOutputs, ChunkOutputs, foldcomp_db, fresh_dir
from .settings import AtlasSettings, FilterSettings
from .status import VALID, Status, sql_in
from .tables import INDEX_SCHEMA, METADATA_SCHEMA, PLDDT_SCHEMA, PREDICTIONS_SCHEMA, embeddings_schema, write_batches

__all__ = ["confidence_bin", "assemble_atlas", "summarize"]

log = logging.getLogger("foldatlas.atlas")

_PRED_COLUMNS = [n for n in PREDICTIONS_SCHEMA.names if n not in ("residue_plddt", "pae")]
#: The predictions of every chunk as the metadata join reads them (scratch file).
_JOINED_SCHEMA = pa.schema(
    [PREDICTIONS_SCHEMA.field(n) for n in _PRED_COLUMNS]
    + [pa.field("high_confidence", pa.bool_()), pa.field("bin", pa.string()), pa.field("chunk", pa.int32())]
)


def confidence_bin(ptm: float | None, plddt: float | None) -> str | None:
    """ESM Atlas bin name of a prediction: ``tm_.60_.70_plddt_.80_.90`` (0.1 steps, 1.0 in the last bin)."""
    if ptm is None or plddt is None or math.isnan(ptm) or math.isnan(plddt):
        return None

    def edges(x: float) -> str:
        lo = min(int(math.floor(x * 10)), 9)
        hi = lo + 1
        fmt = lambda v: "1.0" if v == 10 else f".{v}0"  # noqa: E731
        return f"{fmt(lo)}_{fmt(hi)}"

    return f"tm_{edges(ptm)}_plddt_{edges(plddt)}"


def assemble_atlas(
    *,
    records: str | Path,
    sequences: str | Path,
    chunks: Sequence[ChunkOutputs],
    outputs: AtlasOutputs,
    filter: FilterSettings,
    atlas: AtlasSettings,
    threads: int = 1,
    scratch_dir: str | Path | None = None,
) -> dict:
    """Build the atlas from ingest and fold outputs; returns the summary written to ``summary.json``.

    The structures folder is staged and swapped in whole; DuckDB works in
    ``scratch_dir`` (emptied first and removed at the end; by default a hidden folder in
    the atlas folder).
    """
    started = time.monotonic()
    outputs.root.mkdir(parents=True, exist_ok=True)
    scratch = fresh_dir(scratch_dir or outputs.root / ".assemble_atlas.scratch")
    try:
        preds_path = scratch / "predictions.parquet"
        with atomic_dir(outputs.structures) as staging:
            filer = _StructureFiler(staging, outputs, filter, atlas)
            write_batches(filer.chunk_batches(chunks), preds_path, _JOINED_SCHEMA, compression="lz4")
            filer.close()
            write_batches(_plddt_batches(chunks), outputs.plddt, PLDDT_SCHEMA, row_group_size=65536)
            _write_embeddings(chunks, outputs.embeddings)
            _write_metadata(records, preds_path, staging / outputs.index.name, outputs.metadata, scratch, atlas.memory_gb, threads)
        fold_seconds = duck.connect().execute(f"SELECT coalesce(sum(seconds), 0) FROM read_parquet({duck.sql_path(preds_path)})").fetchall()[0][0]
        summary = summarize(outputs, records=records, sequences=sequences, filter=filter, chunks=len(chunks), seconds=time.monotonic() - started, fold_seconds=float(fold_seconds))
        with atomic_path(outputs.summary) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("atlas assembled in %.1f s", time.monotonic() - started)
    return summary


class _StructureFiler:
    """Files the structure of every ok prediction into the shards (and the Foldcomp
    database) while the predictions of each chunk stream past, and writes the index."""

    def __init__(self, staging: Path, outputs: AtlasOutputs, filter: FilterSettings, atlas: AtlasSettings) -> None:
        rel = str(outputs.structures.relative_to(outputs.root))
        self.filter = filter
        self.highconf = ShardWriter(staging, HIGHCONF, atlas.shard_size, archive_dir=rel)
        self.all = ShardWriter(staging, ALL, atlas.shard_size, archive_dir=rel) if atlas.all_structures else None
        self.foldcomp = FoldcompWriter(foldcomp_db(staging)) if atlas.foldcomp else None
        self.index = _IndexWriter(staging / outputs.index.name)

    def chunk_batches(self, chunks: Sequence[ChunkOutputs]) -> Iterator[pa.RecordBatch]:
        """Every chunk's predictions with ``high_confidence``, ``bin`` and ``chunk`` added."""
        for k, ch in enumerate(chunks):
            t = pq.read_table(ch.predictions, columns=_PRED_COLUMNS)
            rows = t.to_pylist()
            ok = [r["status"] == Status.OK for r in rows]
            hc = [o and self.filter.passes(r["plddt"], r["ptm"], r["artefact"]) for r, o in zip(rows, ok)]
            bins = [confidence_bin(r["ptm"], r["plddt"]) if o else None for r, o in zip(rows, ok)]
            self._file([(r, h) for r, h, o in zip(rows, hc, ok) if o], ch)
            t = t.append_column("high_confidence", pa.array(hc, pa.bool_()))
            t = t.append_column("bin", pa.array(bins, pa.string()))
            t = t.append_column("chunk", pa.array([ch.chunk] * t.num_rows, pa.int32()))
            log.info("chunk %06d: %d predictions, %d high-confidence (%d/%d chunks)", ch.chunk, t.num_rows, sum(hc), k + 1, len(chunks))
            yield from t.to_batches()

    def _file(self, ok: list[tuple[dict, bool]], ch: ChunkOutputs) -> None:
        for r, keep, entry in _chunk_entries(ch, ok, decode=self.foldcomp is not None):
            checksum = r["checksum"]
            if keep:
                self.index.add(self.highconf.add_entry(checksum, entry.comp, entry.size), True, HIGHCONF)
                if self.foldcomp is not None:
                    self.foldcomp.add(checksum, entry.data)  # type: ignore[arg-type]
            if self.all is not None:
                self.index.add(self.all.add_entry(checksum, entry.comp, entry.size), keep, ALL)

    def close(self) -> None:
        self.highconf.close()
        if self.all is not None:
            self.all.close()
        if self.foldcomp is not None:
            self.foldcomp.close()
        self.index.close()


def _plddt_batches(chunks: Sequence[ChunkOutputs]) -> Iterator[pa.RecordBatch]:
    for ch in chunks:
        t = pq.read_table(ch.predictions, columns=["checksum", "status", "residue_plddt"])
        yield from t.filter(pc.equal(t["status"], Status.OK.value)).select(["checksum", "residue_plddt"]).to_batches()


def _write_embeddings(chunks: Sequence[ChunkOutputs], out: Path) -> None:
    if not chunks:
        write_batches([], out, embeddings_schema(1, "float16", per_residue=False))
        return
    schema = pq.read_schema(chunks[0].embeddings)
    write_batches((b for ch in chunks for b in pq.read_table(ch.embeddings).to_batches()), out, schema, row_group_size=65536)


@dataclass(frozen=True)
class _Entry:
    comp: bytes  # the structure's gzip member, as in the chunk archive
    size: int  # bytes of PDB text
    data: bytes | None  # the PDB text, when decoded


def _chunk_entries(ch: ChunkOutputs, ok: list[tuple[dict, bool]], *, decode: bool) -> Iterator[tuple[dict, bool, _Entry]]:
    """The archive entry of every ok prediction of a chunk, in archive order, checked.

    Entries are read by the byte ranges the fold job recorded, and must tile the
    archive: each one starts where the previous ended, holds the member its
    prediction names, and nothing but the end-of-archive marker follows the last.
    Only the tar header is decompressed unless ``decode`` (then the CRC is checked too).

    Raises
    ------
    StaleOutputError
        The archive and the predictions disagree (a member without an ok prediction,
        a missing or misplaced member, bytes that are not an entry, a truncated file),
        or the predictions have no byte ranges (foldatlas 0.1).
    """
    where = str(ch.structures)
    if any(r["archive_offset"] is None or r["archive_length"] is None for r, _ in ok):
        raise StaleOutputError(
            str(ch.predictions),
            "ok predictions without an archive byte range (written by foldatlas 0.1?); "
            "fold this chunk again (snakemake --forcerun fold_chunk)",
        )
    ok = sorted(ok, key=lambda rk: rk[0]["archive_offset"])
    with open(ch.structures, "rb") as fh:
        pos = 0
        for r, keep in ok:
            offset, length = r["archive_offset"], r["archive_length"]
            if offset != pos:
                raise StaleOutputError(where, f"expected the entry of {r['member']} at byte {offset}, found the previous entry ending at {pos} (archive and predictions disagree)")
            comp = fh.read(length)
            if len(comp) != length:
                raise StaleOutputError(where, f"truncated: expected {length} bytes at {offset} for {r['member']}, found {len(comp)}")
            name, size, data = _open_entry(where, offset, comp, decode=decode)
            if name != r["member"]:
                raise StaleOutputError(where, f"byte {offset}: expected member {r['member']!r}, found {name!r}")
            pos += length
            yield r, keep, _Entry(comp, size, data)
        rest = fh.read()
    _check_archive_end(where, rest, pos)


def _open_entry(where: str, offset: int, comp: bytes, *, decode: bool) -> tuple[str, int, bytes | None]:
    """Member name, data size and (with ``decode``, CRC checked) data of one entry."""
    try:
        if decode:
            name, data = entry_data(comp, where=f"byte {offset}")
            return name, len(data), data
        name, size = entry_header(comp, where=f"byte {offset}")
        return name, size, None
    except ValueError as exc:
        raise StaleOutputError(where, str(exc)) from None


def _check_archive_end(where: str, rest: bytes, pos: int) -> None:
    """``rest`` must be the end-of-archive marker and nothing else."""
    try:
        tail = gzip.decompress(rest)
    except (OSError, EOFError, zlib.error) as exc:
        raise StaleOutputError(where, f"expected the end-of-archive marker after byte {pos}, found other bytes ({exc})") from None
    if len(tail) < 1024 or tail.count(0) != len(tail):
        raise StaleOutputError(where, f"{len(tail)} bytes of tar entries after byte {pos} that no ok prediction names")


class _IndexWriter:
    """Streams ``index.parquet`` rows in batches (memory bounded at any atlas size)."""

    BATCH = 65536

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, INDEX_SCHEMA, compression="zstd")
        self._rows: list[dict] = []

    def add(self, entry: IndexEntry, high_confidence: bool, collection: str) -> None:
        self._rows.append({**entry.__dict__, "high_confidence": high_confidence, "collection": collection})
        if len(self._rows) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=INDEX_SCHEMA))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _write_metadata(records: str | Path, preds_path: Path, index_path: Path, out: Path, scratch: Path, memory_gb: float, threads: int) -> None:
    """``metadata.parquet``: every input record joined with its sequence's prediction and
    structure, in input order (DuckDB, spilling under ``memory_gb``)."""
    con = duck.connect(scratch / "atlas.duckdb", memory_gb=memory_gb, spill_dir=scratch / "spill", threads=threads)
    valid = sql_in(VALID)
    query = f"""
        SELECT r.id, r.source, r.source_index, r.record_index, r.header, r.checksum, r.length, r.n_nonstandard,
               CASE WHEN r.status IN {valid}
                    THEN CASE p.status WHEN '{Status.OK}' THEN '{Status.FOLDED}' ELSE p.status END
                    ELSE r.status END AS status,
               r.status = '{Status.DUPLICATE}' AS is_duplicate,
               CASE WHEN r.status IN {valid} AND p.status <> '{Status.OK}'
                    THEN trim(r.reason || ' ' || p.error) ELSE r.reason END AS reason,
               p.plddt, p.plddt_ca, p.ptm,
               CASE WHEN p.status = '{Status.OK}' THEN p.num_conf END AS num_conf,
               p.max_pae,
               CASE WHEN p.status = '{Status.OK}' THEN p.artefact END AS artefact,
               coalesce(p.high_confidence, false) AS high_confidence,
               p.bin, p.chunk, p.model_id, p.model_version, i.archive, i.member
        FROM read_parquet({duck.sql_path(records)}) r
        LEFT JOIN read_parquet({duck.sql_path(preds_path)}) p
               ON r.status IN {valid} AND p.checksum = r.checksum
        LEFT JOIN (SELECT checksum, archive, member FROM read_parquet({duck.sql_path(index_path)})
                   QUALIFY row_number() OVER (PARTITION BY checksum ORDER BY collection = '{HIGHCONF}' DESC, archive) = 1) i
               ON i.checksum = p.checksum
        ORDER BY r.source_index, r.record_index"""
    write_batches(con.sql(query).to_arrow_reader(1 << 17), out, METADATA_SCHEMA, row_group_size=1 << 18)
    con.close()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"foldatlas": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "fair-esm", "pyarrow", "duckdb", "snakemake"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def _counts(con, records: str | Path, sequences: str | Path, outputs: AtlasOutputs) -> dict[str, int]:  # type: ignore[no-untyped-def]
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    rec = dict(q(f"SELECT status, count(*) FROM read_parquet({duck.sql_path(records)}) GROUP BY status"))
    meta = duck.sql_path(outputs.metadata)
    folded = q(
        f"""SELECT count(*) FILTER (WHERE status = '{Status.FOLDED}'), count(*) FILTER (WHERE status = '{Status.OOM}'),
                   count(*) FILTER (WHERE status = '{Status.ERROR}'), count(*) FILTER (WHERE high_confidence),
                   count(*) FILTER (WHERE artefact)
            FROM read_parquet({meta}) WHERE NOT is_duplicate"""
    )[0]
    archived = q(
        f"""SELECT count(*) FILTER (WHERE collection = '{HIGHCONF}'), count(*) FILTER (WHERE collection = '{ALL}')
            FROM read_parquet({duck.sql_path(outputs.index)})"""
    )[0]
    return {
        "records_in": sum(rec.values()),
        "records_ok": rec.get(Status.OK, 0),
        "duplicates": rec.get(Status.DUPLICATE, 0),
        **{str(s): rec.get(s, 0) for s in (Status.EMPTY, Status.INVALID_CHARACTERS, Status.TOO_SHORT, Status.TOO_LONG)},
        "unique_sequences": q(f"SELECT count(*) FROM read_parquet({duck.sql_path(sequences)})")[0][0],
        "folded": folded[0],
        "failed_oom": folded[1],
        "failed_error": folded[2],
        "high_confidence": folded[3],
        "high_confidence_records": q(f"SELECT count(*) FROM read_parquet({meta}) WHERE high_confidence")[0][0],
        "artefacts": folded[4],
        "archived_high_confidence": archived[0],
        "archived_all": archived[1],
    }


def summarize(outputs: AtlasOutputs, *, records: str | Path, sequences: str | Path, filter: FilterSettings, chunks: int, seconds: float, fold_seconds: float) -> dict:
    """Counts at every step, computed from the written tables, with the filter, model and versions."""
    con = duck.connect()
    meta = duck.sql_path(outputs.metadata)
    counts = _counts(con, records, sequences, outputs)
    by_status = dict(con.execute(f"SELECT status, count(*) FROM read_parquet({meta}) GROUP BY status").fetchall())
    ids, versions = con.execute(
        f"""SELECT list(DISTINCT model_id) FILTER (WHERE model_id IS NOT NULL),
                   list(DISTINCT model_version) FILTER (WHERE model_version IS NOT NULL)
            FROM read_parquet({meta}) WHERE NOT is_duplicate"""
    ).fetchall()[0]
    con.close()
    return {
        "counts": counts,
        "metadata_status": dict(sorted(by_status.items())),
        "chunks": chunks,
        "thresholds": {
            "min_plddt": filter.min_plddt,
            "min_ptm": filter.min_ptm,
            "comparison": "strict (plddt > min_plddt and ptm > min_ptm)",
            "exclude_artefacts": filter.exclude_artefacts,
        },
        "model": {"ids": sorted(ids or []), "versions": sorted(versions or [])},
        "versions": _versions(),
        "timings": {"assemble_seconds": round(seconds, 3), "fold_seconds": round(fold_seconds, 3)},
    }
