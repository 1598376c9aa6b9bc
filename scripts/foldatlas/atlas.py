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
import os
import platform
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__
from .archive import FoldcompWriter, IndexEntry, ShardWriter, entry_data, entry_header
from .atomic import atomic_path
from .fold import ChunkOutputs
from .tables import INDEX_SCHEMA, METADATA_SCHEMA, PLDDT_SCHEMA, PREDICTIONS_SCHEMA, write_batches

__all__ = ["Thresholds", "AtlasOutputs", "confidence_bin", "assemble_atlas"]

log = logging.getLogger("foldatlas.atlas")

_PRED_COLUMNS = [n for n in PREDICTIONS_SCHEMA.names if n not in ("residue_plddt", "pae")]


@dataclass(frozen=True)
class Thresholds:
    """The confidence filter (0-1 scale; comparisons are strict: ``>``)."""

    min_plddt: float = 0.7
    min_ptm: float = 0.7
    exclude_artefacts: bool = True

    def passes(self, plddt: float | None, ptm: float | None, artefact: bool) -> bool:
        if plddt is None or ptm is None or math.isnan(plddt) or math.isnan(ptm):
            return False
        return plddt > self.min_plddt and ptm > self.min_ptm and not (self.exclude_artefacts and artefact)


@dataclass(frozen=True)
class AtlasOutputs:
    """Paths of the atlas outputs; ``root`` is the folder archive paths are relative to."""

    root: Path
    metadata: Path
    embeddings: Path
    plddt: Path
    structures: Path
    summary: Path


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


def _stage_dir(final: Path) -> Path:
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def assemble_atlas(
    *,
    records: str | Path,
    sequences: str | Path,
    chunks: Sequence[ChunkOutputs],
    outputs: AtlasOutputs,
    thresholds: Thresholds,
    shard_size: int,
    all_structures: bool = False,
    foldcomp: bool = False,
    memory_limit_gb: float = 4.0,
    threads: int = 1,
) -> dict:
    """Build the atlas from ingest and fold outputs; returns the summary written to ``summary.json``."""
    started = time.monotonic()
    root = outputs.root
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".atlas-", dir=root))
    staging = _stage_dir(outputs.structures)
    try:
        preds_path = scratch / "predictions.parquet"
        index_path = staging / "index.parquet"
        rel = str(outputs.structures.relative_to(root))
        hc_shards = ShardWriter(staging, "highconf", shard_size, archive_dir=rel)
        all_shards = ShardWriter(staging, "all", shard_size, archive_dir=rel) if all_structures else None
        fc = FoldcompWriter(staging / "foldcomp" / "highconf") if foldcomp else None
        index = _IndexWriter(index_path)
        fold_seconds = [0.0]
        pred_schema = pa.schema(
            [PREDICTIONS_SCHEMA.field(n) for n in _PRED_COLUMNS]
            + [pa.field("high_confidence", pa.bool_()), pa.field("bin", pa.string()), pa.field("chunk", pa.int32())]
        )

        def chunk_tables() -> Iterable[pa.RecordBatch]:
            for k, ch in enumerate(chunks):
                t = pq.read_table(ch.predictions, columns=_PRED_COLUMNS)
                fold_seconds[0] += float(pc.sum(pc.multiply(t["seconds"], pa.scalar(1.0, pa.float32()))).as_py() or 0.0)
                rows = t.to_pylist()
                hc = [r["status"] == "ok" and thresholds.passes(r["plddt"], r["ptm"], r["artefact"]) for r in rows]
                bins = [confidence_bin(r["ptm"], r["plddt"]) if r["status"] == "ok" else None for r in rows]
                chunk_no = int(ch.predictions.parent.name.removeprefix("chunk_"))
                ok = [(r, h) for r, h in zip(rows, hc) if r["status"] == "ok"]
                for r, keep, entry in _chunk_entries(ch, ok, decode=fc is not None):
                    checksum = r["checksum"]
                    if keep:
                        index.add(hc_shards.add_entry(checksum, entry.comp, entry.size), True, "highconf")
                        if fc is not None:
                            fc.add(checksum, entry.data)  # type: ignore[arg-type]
                    if all_shards is not None:
                        index.add(all_shards.add_entry(checksum, entry.comp, entry.size), keep, "all")
                t = t.append_column("high_confidence", pa.array(hc, pa.bool_()))
                t = t.append_column("bin", pa.array(bins, pa.string()))
                t = t.append_column("chunk", pa.array([chunk_no] * t.num_rows, pa.int32()))
                log.info("chunk %06d: %d predictions, %d high-confidence (%d/%d chunks)", chunk_no, t.num_rows, sum(hc), k + 1, len(chunks))
                yield from t.to_batches()

        write_batches(chunk_tables(), preds_path, pred_schema, compression="lz4")
        hc_shards.close()
        if all_shards is not None:
            all_shards.close()
        if fc is not None:
            fc.close()
        index.close()

        def plddt_batches() -> Iterable[pa.RecordBatch]:
            for ch in chunks:
                t = pq.read_table(ch.predictions, columns=["checksum", "status", "residue_plddt"])
                t = t.filter(pc.equal(t["status"], "ok")).select(["checksum", "residue_plddt"])
                yield from t.to_batches()

        write_batches(plddt_batches(), outputs.plddt, PLDDT_SCHEMA, row_group_size=65536)
        emb_schema = pq.read_schema(chunks[0].embeddings) if chunks else None
        if emb_schema is not None:
            write_batches((b for ch in chunks for b in pq.read_table(ch.embeddings).to_batches()), outputs.embeddings, emb_schema, row_group_size=65536)
        else:
            from .tables import embeddings_schema

            write_batches([], outputs.embeddings, embeddings_schema(1, "float16", per_residue=False))
        _write_metadata(records, preds_path, index_path, outputs.metadata, scratch, memory_limit_gb, threads)
        # swap the finished structures folder in
        if outputs.structures.exists():
            shutil.rmtree(outputs.structures)
        os.replace(staging, outputs.structures)
        summary = summarize(outputs, records=records, sequences=sequences, thresholds=thresholds, chunks=len(chunks), seconds=time.monotonic() - started, fold_seconds=fold_seconds[0])
        with atomic_path(outputs.summary) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    log.info("atlas assembled in %.1f s", time.monotonic() - started)
    return summary


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
    ValueError
        The archive and the predictions disagree (a member without an ok prediction,
        a missing or misplaced member, bytes that are not an entry, a truncated file).
    """
    where = str(ch.structures)
    if any(r["archive_offset"] is None or r["archive_length"] is None for r, _ in ok):
        raise ValueError(
            f"{ch.predictions}: ok predictions without an archive byte range (written by foldatlas 0.1?); "
            "fold this chunk again (snakemake --forcerun fold_chunk)"
        )
    ok = sorted(ok, key=lambda rk: rk[0]["archive_offset"])
    with open(ch.structures, "rb") as fh:
        pos = 0
        for r, keep in ok:
            offset, length = r["archive_offset"], r["archive_length"]
            if offset != pos:
                raise ValueError(f"{where}: expected the entry of {r['member']} at byte {offset}, found the previous entry ending at {pos} (archive and predictions disagree)")
            comp = fh.read(length)
            if len(comp) != length:
                raise ValueError(f"{where}: truncated: expected {length} bytes at {offset} for {r['member']}, found {len(comp)}")
            at = f"{where}: byte {offset}"
            if decode:
                name, data = entry_data(comp, where=at)
                size = len(data)
            else:
                (name, size), data = entry_header(comp, where=at), None
            if name != r["member"]:
                raise ValueError(f"{at}: expected member {r['member']!r}, found {name!r}")
            pos += length
            yield r, keep, _Entry(comp, size, data)
        rest = fh.read()
    try:
        tail = gzip.decompress(rest)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{where}: expected the end-of-archive marker after byte {pos}, found other bytes ({exc})") from None
    if len(tail) < 1024 or tail.count(0) != len(tail):
        raise ValueError(f"{where}: {len(tail)} bytes of tar entries after byte {pos} that no ok prediction names")


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


def _sql_path(p: str | Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def _write_metadata(records, preds_path, index_path, out, scratch, memory_limit_gb, threads) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    con = duckdb.connect(str(scratch / "atlas.duckdb"))
    con.execute(f"SET memory_limit='{memory_limit_gb}GB'")
    con.execute(f"SET temp_directory={_sql_path(scratch / 'spill')}")
    con.execute(f"SET threads={int(threads)}")
    query = f"""
        SELECT r.id, r.source, r.source_index, r.record_index, r.header, r.checksum, r.length, r.n_nonstandard,
               CASE WHEN r.status IN ('ok', 'duplicate')
                    THEN CASE p.status WHEN 'ok' THEN 'folded' ELSE p.status END
                    ELSE r.status END AS status,
               r.status = 'duplicate' AS is_duplicate,
               CASE WHEN r.status IN ('ok', 'duplicate') AND p.status <> 'ok'
                    THEN trim(r.reason || ' ' || p.error) ELSE r.reason END AS reason,
               p.plddt, p.plddt_ca, p.ptm,
               CASE WHEN p.status = 'ok' THEN p.num_conf END AS num_conf,
               p.max_pae,
               CASE WHEN p.status = 'ok' THEN p.artefact END AS artefact,
               coalesce(p.high_confidence, false) AS high_confidence,
               p.bin, p.chunk, p.model_id, p.model_version, i.archive, i.member
        FROM read_parquet({_sql_path(records)}) r
        LEFT JOIN read_parquet({_sql_path(preds_path)}) p
               ON r.status IN ('ok', 'duplicate') AND p.checksum = r.checksum
        LEFT JOIN (SELECT checksum, archive, member FROM read_parquet({_sql_path(index_path)})
                   QUALIFY row_number() OVER (PARTITION BY checksum ORDER BY collection = 'highconf' DESC, archive) = 1) i
               ON i.checksum = p.checksum
        ORDER BY r.source_index, r.record_index"""
    reader = con.sql(query).to_arrow_reader(1 << 17)
    write_batches(reader, out, METADATA_SCHEMA, row_group_size=1 << 18)
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


def summarize(outputs: AtlasOutputs, *, records, sequences, thresholds: Thresholds, chunks: int, seconds: float, fold_seconds: float) -> dict:  # type: ignore[no-untyped-def]
    """Counts at every step, computed from the written tables."""
    import duckdb

    con = duckdb.connect()
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    rec = dict(q(f"SELECT status, count(*) FROM read_parquet({_sql_path(records)}) GROUP BY status"))
    meta = _sql_path(outputs.metadata)
    by_status = dict(q(f"SELECT status, count(*) FROM read_parquet({meta}) GROUP BY status"))
    uniq = q(f"SELECT count(*) FROM read_parquet({_sql_path(sequences)})")[0][0]
    folded = q(
        f"""SELECT count(*) FILTER (WHERE status = 'folded'), count(*) FILTER (WHERE status = 'oom'),
                   count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE high_confidence),
                   count(*) FILTER (WHERE artefact), list(DISTINCT model_id) FILTER (WHERE model_id IS NOT NULL),
                   list(DISTINCT model_version) FILTER (WHERE model_version IS NOT NULL)
            FROM read_parquet({meta}) WHERE NOT is_duplicate"""
    )[0]
    hc_records = q(f"SELECT count(*) FROM read_parquet({meta}) WHERE high_confidence")[0][0]
    index = outputs.structures / "index.parquet"
    archived = q(
        f"""SELECT count(*) FILTER (WHERE collection = 'highconf'), count(*) FILTER (WHERE collection = 'all')
            FROM read_parquet({_sql_path(index)})"""
    )[0]
    con.close()
    total = sum(rec.values())
    return {
        "counts": {
            "records_in": total,
            "records_ok": rec.get("ok", 0),
            "duplicates": rec.get("duplicate", 0),
            "empty": rec.get("empty", 0),
            "invalid_characters": rec.get("invalid_characters", 0),
            "too_short": rec.get("too_short", 0),
            "too_long": rec.get("too_long", 0),
            "unique_sequences": uniq,
            "folded": folded[0],
            "failed_oom": folded[1],
            "failed_error": folded[2],
            "high_confidence": folded[3],
            "high_confidence_records": hc_records,
            "artefacts": folded[4],
            "archived_high_confidence": archived[0],
            "archived_all": archived[1],
        },
        "metadata_status": dict(sorted(by_status.items())),
        "chunks": chunks,
        "thresholds": {
            "min_plddt": thresholds.min_plddt,
            "min_ptm": thresholds.min_ptm,
            "comparison": "strict (plddt > min_plddt and ptm > min_ptm)",
            "exclude_artefacts": thresholds.exclude_artefacts,
        },
        "model": {"ids": sorted(folded[5] or []), "versions": sorted(folded[6] or [])},
        "versions": _versions(),
        "timings": {"assemble_seconds": round(seconds, 3), "fold_seconds": round(fold_seconds, 3)},
    }
