"""Atlas assembly: filter predictions by confidence and write the tables people query.

Outputs (schemas in :mod:`foldatlas.tables`, documented in the README), each table a
folder of one Parquet file per checksum bucket (:mod:`foldatlas.buckets`):

- ``metadata.parquet/``: one row per *input record*, folded or not, with its outcome;
- ``embeddings.parquet/``: one row per (folded sequence, layer);
- ``plddt.parquet/``: per-residue pLDDT of every prediction;
- ``structures/<bucket>/``: high-confidence structures in ``.tar`` shards of
  gzip-compressed members (optionally all structures, and a Foldcomp database whose
  entries each survived a round trip), with ``structures/index.parquet/`` for random access;
- ``summary.json``: counts at every step, thresholds, model, versions, timings;
- ``config.yaml``: the resolved configuration of the run.

The workflow runs :func:`assemble_bucket` and then :func:`bucket_metadata` once per
bucket, then :func:`finish_atlas`; :func:`assemble_atlas` does all three in one call.

Every Parquet file carries the software versions and model ids in its key-value
metadata (key ``foldatlas``). Every structure copied from a fold job's archive is checked
on the way (tar header checksums, gzip CRC-32 and length of every member), never a sample.

The filter keeps a prediction when ``plddt > filter.min_plddt`` **and**
``ptm > filter.min_ptm`` (strictly greater, as the ESM Atlas's "pLDDT > 0.7 and pTM > 0.7"),
and, by default, it is not flagged as an artefact.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import shutil
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__, duck
from .archive import BLOCK, FoldcompWriter, IndexEntry, Member, ShardWriter, block_entry, check_block, foldcomp_compress, foldcomp_round_trip
from .atomic import atomic_dir, atomic_path, staged_for, write_json
from .errors import InternalError, StaleOutputError
from .inputs import inputs_summary, read_inputs
from .buckets import WHOLE, bucket_where
from .layout import ALL, HIGHCONF, AtlasOutputs, ChunkOutputs, foldcomp_db, fresh_dir
from .settings import AtlasSettings, FilterSettings, StructureSettings
from .status import VALID, Status, sql_in
from .tables import INDEX_SCHEMA, METADATA_SCHEMA, OUTPUTS_KEY, PLDDT_SCHEMA, PREDICTIONS_SCHEMA, embeddings_schema, write_batches

__all__ = ["ATLAS_BANDS", "ATLAS_BINS", "NO_BIN", "bin_sql", "confidence_bin", "crc64_hex", "provenance", "assemble_atlas", "assemble_bucket", "bucket_metadata", "finish_atlas", "prune_atlas", "prune_parts", "as_dataset", "unfinish", "one_model", "summarize"]

log = logging.getLogger("foldatlas.atlas")

_PRED_COLUMNS = [n for n in PREDICTIONS_SCHEMA.names if n not in ("residue_plddt", "pae")]
#: The predictions of every chunk as the metadata join reads them (scratch file).
_JOINED_SCHEMA = pa.schema(
    [PREDICTIONS_SCHEMA.field(n) for n in _PRED_COLUMNS]
    + [pa.field("high_confidence", pa.bool_()), pa.field("bin", pa.string()), pa.field("chunk", pa.int32())]
)

#: The ESM Metagenomic Atlas's bands of pTM and of pLDDT (0-1): lower edge, name. A value
#: falls in the band whose lower edge it reaches; 1.0 is in the top band.
ATLAS_BANDS = ((0.0, "0_.40"), (0.4, ".40_.50"), (0.5, ".50_.60"), (0.6, ".60_.70"), (0.7, ".70_.80"), (0.8, ".80_.90"), (0.9, ".90_1"))
#: Every Atlas bin name, ``tm_<band>_plddt_<band>`` (7 x 7), pTM band major.
ATLAS_BINS = tuple(f"tm_{t}_plddt_{p}" for _, t in ATLAS_BANDS for _, p in ATLAS_BANDS)
#: Where the bin shards (atlas.bins) put a structure without a bin (a NaN pTM or pLDDT).
NO_BIN = "unbinned"
_EDGES = np.array([lo for lo, _ in ATLAS_BANDS[1:]])


def _band(x: float) -> str:
    return ATLAS_BANDS[int(np.searchsorted(_EDGES, x, side="right"))][1]


def confidence_bin(ptm: float | None, plddt: float | None) -> str | None:
    """ESM Atlas bin of a prediction, e.g. ``tm_.60_.70_plddt_.80_.90`` or ``tm_.90_1_plddt_0_.40``
    (the names of the Atlas's ``bins.txt`` and per-bin foldseek databases)."""
    if ptm is None or plddt is None or math.isnan(ptm) or math.isnan(plddt):
        return None
    return f"tm_{_band(ptm)}_plddt_{_band(plddt)}"


def bin_sql(ptm: str, plddt: str) -> str:
    """SQL of :func:`confidence_bin` over two float columns (NULL or NaN: :data:`NO_BIN`)."""

    def band(col: str) -> str:
        # as a double: a float32 0.9 is below the edge 0.9, as in confidence_bin
        whens = " ".join(f"WHEN CAST({col} AS DOUBLE) >= {lo!r} THEN '{name}'" for lo, name in reversed(ATLAS_BANDS[1:]))
        return f"CASE {whens} ELSE '{ATLAS_BANDS[0][1]}' END"

    bad = f"{ptm} IS NULL OR {plddt} IS NULL OR isnan({ptm}) OR isnan({plddt})"
    return f"CASE WHEN {bad} THEN '{NO_BIN}' ELSE 'tm_' || {band(ptm)} || '_plddt_' || {band(plddt)} END"


def _crc64_table() -> np.ndarray:
    """The table of UniProt's CRC64 (ISO 3309 polynomial, reflected; SWISS-PROT's crc64)."""
    table = np.zeros(256, dtype=np.uint64)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0xD800000000000000 if crc & 1 else 0)
        table[i] = crc
    return table


_CRC64 = _crc64_table()


def crc64_hex(sequences: Sequence[str]) -> list[str]:
    """UniProt's CRC64 of each sequence as 16 upper-case hex digits (UniProt's ``SQ``
    lines and the ESM Atlas's ``sequenceChecksum``), computed for all sequences at once,
    one residue position at a time (NumPy)."""
    n = len(sequences)
    if n == 0:
        return []
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    lens = lengths[order]
    width = int(lens[-1])
    buf = np.zeros((n, max(width, 1)), dtype=np.uint8)
    for row, k in enumerate(order):
        s = sequences[k].encode("ascii")
        buf[row, : len(s)] = np.frombuffer(s, dtype=np.uint8)
    crc = np.zeros(n, dtype=np.uint64)
    eight, mask = np.uint64(8), np.uint64(0xFF)
    for j in range(width):
        start = int(np.searchsorted(lens, j, side="right"))  # rows with more than j residues
        c = crc[start:]
        crc[start:] = (c >> eight) ^ _CRC64[((c ^ buf[start:, j].astype(np.uint64)) & mask).astype(np.intp)]
    out = [""] * n
    for row, k in enumerate(order):
        out[k] = f"{int(crc[row]):016X}"
    return out


def provenance(model_ids: Sequence[str] = (), model_versions: Sequence[str] = ()) -> dict[bytes, bytes]:
    """Key-value metadata of every atlas Parquet file: ``foldatlas`` -> JSON with the
    software versions and the models that folded the structures."""
    value = {"foldatlas": __version__, "versions": _versions(), "model_ids": sorted(model_ids), "model_versions": sorted(model_versions)}
    return {b"foldatlas": json.dumps(value, sort_keys=True).encode()}


def _with_provenance(schema: pa.Schema, meta: Mapping[bytes, bytes]) -> pa.Schema:
    return schema.with_metadata({**(schema.metadata or {}), **meta})


def assemble_atlas(
    *,
    records: str | Path,
    sequences: str | Path,
    chunks: Sequence[ChunkOutputs],
    outputs: AtlasOutputs,
    filter: FilterSettings,
    atlas: AtlasSettings,
    structures: StructureSettings | None = None,
    config: Mapping[str, object] | None = None,
    threads: int = 1,
    scratch_dir: str | Path | None = None,
    inputs: str | Path,
    outputs_key: str | None = None,
    releases: Sequence[Mapping[str, object]] = (),
    release: str | None = None,
) -> dict:
    """Build the whole atlas in one call, as one bucket (:data:`WHOLE`); return the
    summary written to ``summary.json``. What the workflow's jobs do, in one process:
    :func:`assemble_bucket`, :func:`bucket_metadata`, then :func:`finish_atlas`.

    ``inputs`` (``inputs.json``, the independent count of every input file) gives the
    summary its per-file records: bytes compressed and decompressed, records, SHA-256 of
    the decompressed text (``check_accounting`` compares them with the file again), and
    every record its file's ``source_id``. ``chunks``: the store chunks folding the unique
    sequences (``only`` set where the atlas takes some); ``release`` and ``releases``
    (:func:`foldatlas.store.release_history`) go into the summary as they are.

    ``structures`` says which files each structure has in the chunk archives (default:
    PDB only); ``config`` (the run's resolved configuration) is written to
    ``config.yaml``. DuckDB works in ``scratch_dir`` (emptied first and removed at the
    end; by default a hidden folder in the atlas folder).
    """
    outputs.root.mkdir(parents=True, exist_ok=True)
    scratch = fresh_dir(scratch_dir or outputs.root / ".assemble_atlas.scratch")
    try:
        preds, part = scratch / "predictions.parquet", scratch / "part.json"
        write_json(part, assemble_bucket(
            bucket=WHOLE, sequences=sequences, chunks=chunks, outputs=outputs, predictions=preds, filter=filter, atlas=atlas,
            structures=structures, threads=threads, scratch_dir=scratch / "bucket", outputs_key=outputs_key,
        ))  # fmt: skip
        bucket_metadata(bucket=WHOLE, records=records, sequences=sequences, inputs=inputs, outputs=outputs, predictions={WHOLE: preds}, part=part,
                        atlas=atlas, threads=threads, scratch_dir=scratch / "metadata")  # fmt: skip
        return finish_atlas(outputs, parts={WHOLE: part}, records=records, sequences=sequences, inputs=inputs, filter=filter, config=config, releases=releases, release=release)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def assemble_bucket(
    *,
    bucket: str,
    sequences: str | Path,
    chunks: Sequence[ChunkOutputs],
    outputs: AtlasOutputs,
    predictions: str | Path,
    filter: FilterSettings,
    atlas: AtlasSettings,
    structures: StructureSettings | None = None,
    threads: int = 1,
    scratch_dir: str | Path,
    outputs_key: str | None = None,
    template: ChunkOutputs | None = None,
) -> dict:
    """One checksum bucket of the atlas: the structures, index, pLDDT and embeddings of
    the predictions whose checksum is in ``bucket``; return the bucket's part (its
    models, chunks, Foldcomp figures and fold seconds) for :func:`finish_atlas`.

    ``sequences``: the rows of ``sequences.parquet`` whose prediction (the
    representative's, for a member) is in the bucket, and ``chunks`` the store chunks
    that hold them (:func:`foldatlas.store.bucket_sources`). Writes ``structures/<bucket>/``
    (staged and swapped in whole), the bucket's file of each table, and ``predictions``
    (every prediction taken, with its filter outcome: what :func:`bucket_metadata` joins).
    ``template``: a chunk of the atlas whose embeddings' schema and model an empty
    bucket's files take.

    Raises
    ------
    StaleOutputError
        A chunk was folded under other settings or by another model than the others, its
        archive and predictions disagree, or it holds other sequences than the plan says.
    """
    started = time.monotonic()
    unfinish(outputs)
    scratch = fresh_dir(scratch_dir)
    formats = tuple(structures.formats) if structures is not None else ("pdb",)
    try:
        if outputs_key is not None:
            _check_outputs_key(chunks, outputs_key)
        kinds = _model_kinds(chunks or ([template] if template else []))  # an empty bucket: the atlas's model
        meta = provenance(sorted({k[0] for k in kinds}), sorted({k[1] for k in kinds}))
        index_tmp = scratch / "index.parquet"
        with atomic_dir(outputs.shards(bucket)) as staging:
            filer = _StructureFiler(staging, outputs, bucket, index_tmp, filter, atlas, formats, meta, threads)
            try:
                write_batches(filer.chunk_batches(chunks), predictions, _JOINED_SCHEMA, compression="lz4")
            finally:
                filer.pool.shutdown(cancel_futures=True)
            foldcomp = filer.close()
            _check_plan(sequences, Path(predictions), chunks, scratch, atlas.memory_gb, threads)
            _write_bucket_tables(chunks, outputs, bucket, index_tmp, meta, template)
        fold_seconds = duck.connect().execute(f"SELECT coalesce(sum(seconds), 0) FROM read_parquet({duck.sql_path(predictions)})").fetchall()[0][0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("bucket %s assembled in %.1f s", bucket, time.monotonic() - started)
    return {"bucket": bucket, "models": [list(k) for k in kinds], "formats": list(formats), "chunks": sorted(c.chunk for c in chunks),
            "foldcomp": foldcomp, "fold_seconds": float(fold_seconds), "seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def _write_bucket_tables(chunks: Sequence[ChunkOutputs], outputs: AtlasOutputs, bucket: str, index: Path, meta: Mapping[bytes, bytes], template: ChunkOutputs | None) -> None:
    """The bucket's files of ``plddt``, ``embeddings`` and the structure index (written to ``index`` first)."""
    for table in (outputs.plddt, outputs.embeddings, outputs.index):
        as_dataset(table)
    write_batches(_plddt_batches(chunks), outputs.part(outputs.plddt, bucket), _with_provenance(PLDDT_SCHEMA, meta), row_group_size=65536)
    _write_embeddings(chunks, outputs.part(outputs.embeddings, bucket), meta, template)
    with atomic_path(outputs.part(outputs.index, bucket)) as tmp:
        shutil.copyfile(index, tmp)


def unfinish(outputs: AtlasOutputs) -> None:
    """Remove ``summary.json`` and ``accounting.json`` before a bucket's files change: until
    the finish writes them again, the folders may hold buckets of two runs (another split,
    other settings), and nothing may say the atlas is finished."""
    for path in (outputs.summary, outputs.accounting):
        path.unlink(missing_ok=True)


def as_dataset(table: Path) -> None:
    """Make ``table`` a dataset folder; an atlas of foldatlas < 0.8 has one file there,
    which is removed (the bucket jobs write its rows again)."""
    try:
        if table.is_file():
            log.info("%s: one file of foldatlas < 0.8, replaced by a folder of one file per checksum bucket", table)
            table.unlink(missing_ok=True)
    except IsADirectoryError:  # another bucket job made the folder meanwhile
        pass
    table.mkdir(parents=True, exist_ok=True)


def finish_atlas(
    outputs: AtlasOutputs,
    *,
    parts: Mapping[str, str | Path],
    records: str | Path,
    sequences: str | Path,
    inputs: str | Path,
    filter: FilterSettings,
    config: Mapping[str, object] | None = None,
    releases: Sequence[Mapping[str, object]] = (),
    release: str | None = None,
    bins: bool = False,
) -> dict:
    """Finish an atlas whose buckets are written (``parts``: each bucket's part from
    :func:`assemble_bucket`, every bucket of the atlas; with ``bins``, their bin shards
    too): remove what other buckets or an older layout left in the atlas's folders, then
    write ``summary.json`` (counted from the written tables) and ``config.yaml``; return
    the summary.

    Raises
    ------
    StaleOutputError
        Two buckets' predictions were folded by different models.
    """
    started = time.monotonic()
    recs = {b: json.loads(Path(p).read_text()) for b, p in parts.items()}
    kinds: dict[tuple, str] = {}
    for b, rec in recs.items():
        for k in rec["models"]:
            kinds.setdefault(tuple(k), str(parts[b]))
    one_model(kinds)
    prune_atlas(outputs, sorted(parts), bins=bins)
    prune_parts(parts)
    foldcomp = _merged_foldcomp([r["foldcomp"] for r in recs.values()])
    chunks = len({c for r in recs.values() for c in r["chunks"]})
    seconds = sum(r["seconds"] for r in recs.values()) + time.monotonic() - started
    summary = summarize(outputs, records=records, sequences=sequences, filter=filter, chunks=chunks, seconds=seconds, fold_seconds=sum(r["fold_seconds"] for r in recs.values()))
    summary["timings"]["finish_seconds"] = round(time.monotonic() - started, 3)
    summary |= {"structures": {"formats": next(iter(recs.values()))["formats"] if recs else ["pdb"], "foldcomp": foldcomp}, "inputs": inputs_summary(inputs),
                "buckets": sorted(parts), "release": release, "releases": [dict(r) for r in releases],
                "redundancy": str(dict(dict(config or {}).get("ingest") or {}).get("redundancy", "none")),
                "bins": _bin_counts(outputs.bins_index) if bins else None}  # fmt: skip
    write_json(outputs.summary, summary)
    _write_config(outputs.config, config)
    log.info("atlas of %d buckets finished in %.1f s", len(parts), time.monotonic() - started)
    return summary


#: The files of one bucket in ``atlas_parts/``.
_PART_FILE = re.compile(r"(?P<bucket>all|[0-9a-f]{1,2})\.(json|predictions\.parquet|accounting\.json)")


def prune_parts(parts: Mapping[str, str | Path]) -> list[Path]:
    """Remove from the folder of the buckets' parts (``atlas_parts/``) the files of other
    buckets (another split's parts, predictions and accounting: ``<bucket>.json``,
    ``<bucket>.predictions.parquet``, ``<bucket>.accounting.json``) and killed writes of
    any bucket's, so that a change of ``atlas.bucket_digits`` leaves no copy of the old
    split's predictions behind; return what was removed. Files of other names stay;
    nothing is removed when the parts are not in one folder."""
    folders = {Path(p).parent for p in parts.values()}
    if len(folders) != 1:
        return []
    gone = []
    for f in sorted(folders.pop().iterdir()):
        staged = staged_for(f.name)  # a killed write of a part file
        m = _PART_FILE.fullmatch(staged or f.name)
        if m and f.is_file() and (staged is not None or m["bucket"] not in parts):
            gone.append(f)
    for f in gone:
        log.info("removing %s: not one of this atlas's buckets", f)
        f.unlink()
    return gone


def prune_atlas(outputs: AtlasOutputs, buckets: Sequence[str], *, bins: bool = False) -> list[Path]:
    """Remove from the atlas's table and structures folders every file or folder that is
    not one of ``buckets``' (another bucket split's, a killed write's, the single files
    and shards of foldatlas < 0.8), so that a reader of a folder sees this atlas's rows
    and nothing else; the same in the bin shards' folders with ``bins`` (``atlas.bins``),
    which are removed whole without it; return what was removed."""
    gone = []
    if not bins and outputs.bins.exists():
        gone.append(outputs.bins)
    for folder, keep in outputs.bucket_folders(buckets, bins=bins):
        gone += [f for f in sorted(folder.iterdir()) if f.name not in keep] if folder.is_dir() else []
    for f in gone:
        log.info("removing %s: not part of this atlas's buckets %s", f, list(buckets) if len(buckets) <= 16 else f"({len(buckets)})")
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f)
        else:
            f.unlink()
    return gone


def _bin_counts(index: Path) -> dict[str, int]:
    """Structures per ESM Atlas bin in the bin shards (their index's rows)."""
    rows = duck.connect().execute(f"SELECT collection, count(*) FROM read_parquet({duck.sql_path(index / '*.parquet')}) GROUP BY 1 ORDER BY 1").fetchall()
    return {b: int(n) for b, n in rows}


def _merged_foldcomp(parts: Sequence[dict]) -> dict:
    """The Foldcomp figures of every bucket added up (the largest RMSD of all)."""
    if not parts:
        return {"enabled": False}
    out = dict(parts[0])
    for key in ("written", "checked", "left_out"):
        out[key] = sum(p.get(key, 0) for p in parts)
    rmsds = [p["max_rmsd"] for p in parts if p.get("max_rmsd") is not None]
    out["max_rmsd"] = max(rmsds) if rmsds else None
    return out


def _write_config(path: Path, config: Mapping[str, object] | None) -> None:
    """The resolved configuration as YAML (keys in the schema's order)."""
    import yaml

    header = f"# Resolved configuration of the run that made this atlas (foldatlas {__version__}).\n"
    with atomic_path(path) as tmp:
        tmp.write_text(header + yaml.safe_dump(dict(config or {}), sort_keys=False, allow_unicode=True))


def _model_kinds(chunks: Sequence[ChunkOutputs]) -> list[tuple]:
    """Distinct models (id, version, weights by content, language-model precision) of
    every chunk's predictions (one scan of a few small columns): one at most.

    Raises
    ------
    StaleOutputError
        When the chunks were folded by more than one model: an atlas never mixes models.
    """
    if not chunks:
        return []
    con = duck.connect()
    models = con.execute(
        f"""SELECT DISTINCT model_id, model_version, weights_checksum, lm_precision, filename
            FROM read_parquet({duck.sql_paths(c.predictions for c in chunks)}, filename = true)
            WHERE model_id IS NOT NULL ORDER BY filename"""
    ).fetchall()
    con.close()
    kinds: dict[tuple, str] = {}
    for m in models:  # each model and the first chunk folded by it, in chunk order
        kinds.setdefault(tuple(m[:4]), m[4])
    one_model(kinds)
    return list(kinds)


def one_model(kinds: Mapping[tuple, str]) -> None:
    """``kinds``: each model found, and where it was found first (in that order).

    Raises
    ------
    StaleOutputError
        There is more than one: an atlas never mixes models.
    """
    if len(kinds) > 1:
        (first, a), (second, b) = list(kinds.items())[:2]
        raise StaleOutputError(
            str(b), f"folded by another model than {a} (model id, version, weights, precision {list(second)} against {list(first)}): "
            "an atlas never mixes models; delete the fold folders of the other model's chunks and run again",
        )  # fmt: skip


def _crc64_batches(sequences: str | Path, bucket: str) -> Iterator[pa.RecordBatch]:
    """``checksum, crc64`` of the bucket's unique sequences, a batch at a time."""
    con = duck.connect()
    reader = con.sql(f"SELECT checksum, sequence FROM read_parquet({duck.sql_path(sequences)}) WHERE {bucket_where('checksum', bucket)}").to_arrow_reader(65536)
    for batch in reader:
        seqs = batch.column(1).to_pylist()
        yield pa.record_batch([batch.column(0), pa.array(crc64_hex(seqs), pa.string())], names=["checksum", "crc64"])
    con.close()


class _StructureFiler:
    """Files the structure of every ok prediction into the shards (and the Foldcomp
    database) while the predictions of each chunk stream past, and writes the index."""

    def __init__(
        self, staging: Path, outputs: AtlasOutputs, bucket: str, index: Path, filter: FilterSettings, atlas: AtlasSettings, formats: Sequence[str], meta: Mapping[bytes, bytes], threads: int
    ) -> None:
        rel = str(outputs.shards(bucket).relative_to(outputs.root))
        self.filter, self.atlas, self.formats, self.root = filter, atlas, tuple(formats), outputs.root
        # atlas.copy_structures: false: no shards, the index points into the fold archives
        copy = atlas.copy_structures
        self.highconf = ShardWriter(staging, HIGHCONF, atlas.shard_size, archive_dir=rel) if copy else None
        self.all = ShardWriter(staging, ALL, atlas.shard_size, archive_dir=rel) if copy and atlas.all_structures else None
        self.foldcomp = FoldcompWriter(foldcomp_db(staging)) if atlas.foldcomp else None
        self.foldcomp_stats = {"written": 0, "checked": 0, "left_out": 0, "max_rmsd": None, "tolerance": atlas.foldcomp_max_rmsd}
        self.index = IndexWriter(index, _with_provenance(INDEX_SCHEMA, meta))
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="foldatlas-check")

    def chunk_batches(self, chunks: Sequence[ChunkOutputs]) -> Iterator[pa.RecordBatch]:
        """Every chunk's predictions with ``high_confidence``, ``bin`` and ``chunk`` added."""
        for k, ch in enumerate(chunks):
            t = pq.read_table(ch.predictions, columns=_PRED_COLUMNS)
            end = _archive_end(t, ch)  # the byte ranges of every entry tile the archive
            t = _only(t, ch)  # then only the rows (and entries) this bucket takes
            rows = t.to_pylist()
            ok = [r["status"] == Status.OK for r in rows]
            hc = [o and self.filter.passes(r["plddt"], r["ptm"], r["artefact"]) for r, o in zip(rows, ok)]
            bins = [confidence_bin(r["ptm"], r["plddt"]) if o else None for r, o in zip(rows, ok)]
            self._file([(r, h) for r, h, o in zip(rows, hc, ok) if o], ch, end)
            t = t.append_column("high_confidence", pa.array(hc, pa.bool_()))
            t = t.append_column("bin", pa.array(bins, pa.string()))
            t = t.append_column("chunk", pa.array([ch.chunk] * t.num_rows, pa.int32()))
            log.info("chunk %06d: %d predictions, %d high-confidence (%d/%d chunks)", ch.chunk, t.num_rows, pc.sum(t["high_confidence"]).as_py() or 0, k + 1, len(chunks))
            yield from t.to_batches()

    def _file(self, ok: list[tuple[dict, bool]], ch: ChunkOutputs, end: int) -> None:
        """File the structures of the ok predictions the atlas takes from a chunk (each
        entry read by its byte range and checked; the entries of sequences it does not
        take, ``ch.only``, are another bucket's job to read, or no atlas's)."""
        # where the store keeps it, from the atlas folder: between the resolved paths, as
        # a reader's open() resolves atlas/../.. (a symlinked output.root or store.path)
        archive = os.path.relpath(os.path.realpath(ch.structures), os.path.realpath(self.root))
        for r, keep, block, members in _chunk_entries(ch, ok, self.formats, self.pool, end):
            checksum, where = r["checksum"], (archive, r["archive_offset"])
            if keep:
                fc = self._foldcomp(checksum, members[0].text)
                self.index.add(_placed(self.highconf, checksum, block, members, where), True, HIGHCONF, fc)
            if self.atlas.all_structures:
                self.index.add(_placed(self.all, checksum, block, members, where), keep, ALL, (None, None, None))

    def _foldcomp(self, checksum: str, pdb: bytes) -> tuple[bool | None, float | None, str | None]:
        """Add a high-confidence structure to the Foldcomp database, after a round trip
        when it is in the checked sample: ``(in_foldcomp, rmsd, reason left out)``."""
        if self.foldcomp is None:
            return None, None, None
        st = self.foldcomp_stats
        if int(checksum[:8], 16) >= self.atlas.foldcomp_check_fraction * 2**32:  # not in the checked sample
            blob, rmsd, reason = foldcomp_compress(checksum, pdb), None, "Foldcomp failed to compress it"
        else:
            blob, rmsd, reason = foldcomp_round_trip(checksum, pdb)
            st["checked"] += 1
        if blob is not None and rmsd is not None:
            st["max_rmsd"] = max(st["max_rmsd"] or 0.0, round(rmsd, 4))
            if rmsd > self.atlas.foldcomp_max_rmsd:
                blob, reason = None, f"round-trip RMSD {rmsd:.3f} A exceeds atlas.foldcomp_max_rmsd = {self.atlas.foldcomp_max_rmsd}"
        if blob is None:
            st["left_out"] += 1
            log.warning("structure %s left out of the Foldcomp database: %s", checksum, reason)
            return False, rmsd, reason
        self.foldcomp.add(checksum, blob)
        st["written"] += 1
        return True, rmsd, None

    def close(self) -> dict:
        """Finish every shard, the Foldcomp database and the index; return the Foldcomp counts."""
        for shards in (self.highconf, self.all):
            if shards is not None:
                shards.close()
        if self.foldcomp is not None:
            self.foldcomp.close()
        self.index.close()
        return {"enabled": self.foldcomp is not None, "check_fraction": self.atlas.foldcomp_check_fraction, **self.foldcomp_stats}


def _placed(shards: ShardWriter | None, checksum: str, block: bytes, members: list[Member], where: tuple[str, int]) -> IndexEntry:
    """A structure's index entry: its copy appended to ``shards``, or with no shards
    (``atlas.copy_structures: false``) its entries where they are, ``where`` = (the fold
    job's archive from the atlas folder, the block's offset in it)."""
    if shards is None:
        return block_entry(checksum, where[0], where[1], members)
    return shards.add_block(checksum, block, members)


def _only(t: pa.Table, ch: ChunkOutputs) -> pa.Table:
    """The rows of a chunk's table the atlas takes (``ch.only``; all when None)."""
    if ch.only is None:
        return t
    return t.filter(pc.is_in(t["checksum"], value_set=pa.array(sorted(ch.only), pa.string())))


def _plddt_batches(chunks: Sequence[ChunkOutputs]) -> Iterator[pa.RecordBatch]:
    for ch in chunks:
        t = _only(pq.read_table(ch.predictions, columns=["checksum", "status", "residue_plddt"]), ch)
        yield from t.filter(pc.equal(t["status"], Status.OK.value)).select(["checksum", "residue_plddt"]).to_batches()


def _write_embeddings(chunks: Sequence[ChunkOutputs], out: Path, meta: Mapping[bytes, bytes], template: ChunkOutputs | None = None) -> None:
    """The chunks' embeddings; with no chunk (an empty bucket), no row, in the schema of
    ``template``'s (another bucket's chunk: every file of the dataset has one schema)."""
    source = chunks[0] if chunks else template
    if source is None:
        write_batches([], out, _with_provenance(embeddings_schema(1, "float16", per_residue=False), meta))
        return
    schema = _with_provenance(pq.read_schema(source.embeddings), meta)
    write_batches((b for ch in chunks for b in _only(pq.read_table(ch.embeddings), ch).to_batches()), out, schema, row_group_size=65536)


#: Structures whose check is in flight at once (memory: a few MB of compressed entries).
_CHECK_WINDOW = 256


def _chunk_entries(ch: ChunkOutputs, ok: list[tuple[dict, bool]], formats: Sequence[str], pool: Executor, end: int) -> Iterator[tuple[dict, bool, bytes, list[Member]]]:
    """The tar entries of every ok prediction of a chunk, in archive order, each checked.

    Every structure's block (one member per format, named after the prediction's
    checksum) must have valid tar headers and gzip data whose CRC-32 and length hold:
    every member is decompressed once, so a flipped bit anywhere is caught, never
    sampled. The checks run on ``pool``'s threads (zlib releases the GIL) while this
    thread reads and copies; results come back in archive order.

    Raises
    ------
    StaleOutputError
        The archive and the predictions disagree (see :func:`_read_blocks`), or an
        entry is corrupt.
    """
    where = str(ch.structures)
    pending: deque = deque()

    def checked(item: tuple) -> tuple[dict, bool, bytes, list[Member]]:
        r, keep, block, future = item
        try:
            return r, keep, block, future.result()
        except ValueError as exc:
            raise StaleOutputError(where, f"{exc} (fold this chunk again if structures.formats changed)") from None

    try:
        for r, keep, offset, block in _read_blocks(ch, ok, end):
            pending.append((r, keep, block, pool.submit(check_block, block, r["checksum"], formats, where=f"byte {offset}")))
            if len(pending) >= _CHECK_WINDOW:
                yield checked(pending.popleft())
        while pending:
            yield checked(pending.popleft())
    finally:
        for item in pending:
            item[3].cancel()


def _archive_end(t: pa.Table, ch: ChunkOutputs) -> int:
    """Where the entries of a chunk's ok predictions end in its archive, after checking
    that their byte ranges tile it (each block starts where the previous ended, the
    first at 0): from the predictions alone, so that a bucket job reads only its entries.

    Raises
    ------
    StaleOutputError
        A misplaced range, or ok predictions without byte ranges (foldatlas 0.1).
    """
    ok = t.filter(pc.equal(t["status"], Status.OK.value))
    offsets, lengths = ok["archive_offset"], ok["archive_length"]
    if offsets.null_count or lengths.null_count:
        raise StaleOutputError(
            str(ch.predictions),
            "ok predictions without an archive byte range (written by foldatlas 0.1?); "
            "fold this chunk again (snakemake --forcerun fold_chunk)",
        )
    order = np.argsort(offsets.to_numpy(), kind="stable")
    start, length = offsets.to_numpy()[order], lengths.to_numpy()[order]
    expected = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    bad = np.flatnonzero(start != expected)
    if len(bad):
        k = int(bad[0])
        raise StaleOutputError(
            str(ch.structures), f"expected the entries of {ok['member'][int(order[k])].as_py()} at byte {int(start[k])}, found the previous entry ending at {int(expected[k])} (archive and predictions disagree)"
        )
    return int(length.sum())


def _read_blocks(ch: ChunkOutputs, ok: list[tuple[dict, bool]], end: int) -> Iterator[tuple[dict, bool, int, bytes]]:
    """``(prediction, keep, offset, block)`` of each of ``ok`` (the predictions taken),
    read by the byte range the fold job recorded (:func:`_archive_end` checked that the
    ranges tile the archive); then only the end-of-archive marker may follow ``end``.

    Raises
    ------
    StaleOutputError
        A truncated file, or more than the end-of-archive marker after the entries.
    """
    where = str(ch.structures)
    with open(ch.structures, "rb") as fh:
        for r, keep in sorted(ok, key=lambda rk: rk[0]["archive_offset"]):
            offset, length = r["archive_offset"], r["archive_length"]
            fh.seek(offset)
            block = fh.read(length)
            if len(block) != length:
                raise StaleOutputError(where, f"truncated: expected {length} bytes at {offset} for {r['member']}, found {len(block)}")
            yield r, keep, offset, block
        fh.seek(end)
        rest = fh.read()
    if len(rest) < 2 * BLOCK or len(rest) % BLOCK or rest.count(0) != len(rest):
        raise StaleOutputError(where, f"expected only the end-of-archive marker (zero blocks) after byte {end}, found {len(rest)} bytes with {len(rest) - rest.count(0)} non-zero")


class IndexWriter:
    """Streams ``index.parquet`` rows in batches (memory bounded at any atlas size)."""

    BATCH = 65536

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._rows: list[dict] = []

    def add(self, entry: IndexEntry, high_confidence: bool, collection: str, foldcomp: tuple[bool | None, float | None, str | None]) -> None:
        self._rows.append({
            **entry.__dict__, "pdb_size": entry.size, "high_confidence": high_confidence, "collection": collection,
            "in_foldcomp": foldcomp[0], "foldcomp_rmsd": foldcomp[1], "foldcomp_reason": foldcomp[2],
        })  # fmt: skip
        if len(self._rows) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _check_outputs_key(chunks: Sequence[ChunkOutputs], expected: str) -> None:
    """Every chunk was folded under the settings of this run (``OUTPUTS_KEY``).

    Raises
    ------
    StaleOutputError
        Naming the first chunk folded under other settings, and the settings that differ.
    """
    want = json.loads(expected)
    for ch in chunks:
        found = (pq.read_schema(ch.predictions).metadata or {}).get(OUTPUTS_KEY)
        if found is None:
            raise StaleOutputError(str(ch.predictions), "records no fold settings (folded by an earlier foldatlas): delete this chunk's fold folder and run again")
        got = json.loads(found)
        if got != want:
            diff = [f"{sec}.{k}: {got.get(sec, {}).get(k)!r} -> {want.get(sec, {}).get(k)!r}" for sec in sorted(set(got) | set(want))
                    for k in sorted(set(got.get(sec, {})) | set(want.get(sec, {}))) if got.get(sec, {}).get(k) != want.get(sec, {}).get(k)]  # fmt: skip
            raise StaleOutputError(
                str(ch.predictions),
                f"folded under other settings than this run's ({'; '.join(diff)}): the fold job was not run again "
                "(Snakemake's params trigger off, e.g. --rerun-triggers mtime, or .snakemake/metadata lost); delete this chunk's fold folder and run again",
            )


def _check_plan(sequences: str | Path, preds_path: Path, chunks: Sequence[ChunkOutputs], scratch: Path, memory_gb: float, threads: int) -> None:
    """Every chunk's fold outputs hold exactly the sequences the plan put in that chunk
    (``sequences.parquet``'s ``chunk``): a fold output made for other content (a chunk
    planned again while Snakemake's params trigger was off, or with its metadata lost)
    stops the assembly instead of reaching the atlas.

    Raises
    ------
    StaleOutputError
        Naming the chunk's predictions, one sequence that differs and how many do.
    """
    con = duck.connect(scratch / "plan_check.duckdb", memory_gb=memory_gb, spill_dir=scratch / "spill", threads=threads)
    seqs = f"read_parquet({duck.sql_path(sequences)})"
    row = con.execute(
        f"""SELECT coalesce(p.chunk, s.chunk), coalesce(p.checksum, s.checksum), p.checksum IS NULL, count(*) OVER ()
            FROM (SELECT checksum, chunk FROM read_parquet({duck.sql_path(preds_path)})) p
            FULL OUTER JOIN (SELECT DISTINCT coalesce(representative, checksum) AS checksum, chunk FROM {seqs}) s ON p.checksum = s.checksum AND p.chunk = s.chunk
            WHERE p.checksum IS NULL OR s.checksum IS NULL
            ORDER BY 1, 2 LIMIT 1"""
    ).fetchone()
    if row is None:
        con.close()
        return
    chunk, checksum, missing, n = row
    planned = None if missing else con.execute(f"SELECT chunk FROM {seqs} WHERE checksum = ?", [checksum]).fetchone()
    con.close()
    planned_in = planned[0] if planned else None
    where = {ch.chunk: ch.predictions for ch in chunks}.get(chunk, f"chunk {chunk}")
    what = "is planned in this chunk but has no prediction here" if missing else ("is not planned" if planned_in is None else f"is planned in chunk {planned_in}")
    raise StaleOutputError(
        str(where),
        f"sequence {checksum} {what} ({n} such sequences in all): these fold outputs were made for other chunk content "
        "(the chunks were planned again while Snakemake's params trigger was off, e.g. --rerun-triggers mtime, or .snakemake/metadata was lost); "
        "delete this chunk's fold folder and run again",
    )


def bucket_metadata(
    *,
    bucket: str,
    records: str | Path,
    sequences: str | Path,
    inputs: str | Path,
    outputs: AtlasOutputs,
    predictions: Mapping[str, str | Path],
    part: str | Path,
    atlas: AtlasSettings,
    threads: int = 1,
    scratch_dir: str | Path,
) -> int:
    """The bucket's file of ``metadata.parquet``: every input record whose checksum is in
    ``bucket`` (those without one, rejected before it was computed, in the first
    bucket's), in input order, joined with its prediction and structure and, for a
    member (``ingest.redundancy``), its representative's, whatever bucket that is in;
    returns its rows.

    ``predictions``: what each bucket's :func:`assemble_bucket` took (this bucket's, and
    those of its members' representatives); ``part``: this bucket's part (its models go
    into the file's key-value metadata). The index files of those buckets must be there.

    Raises
    ------
    InternalError
        A representative's bucket is not in ``predictions``.
    """
    unfinish(outputs)
    scratch = fresh_dir(scratch_dir)
    try:
        kinds = json.loads(Path(part).read_text())["models"]
        as_dataset(outputs.metadata)
        crc = scratch / "crc64.parquet"
        write_batches(_crc64_batches(sequences, bucket), crc, pa.schema([("checksum", pa.string()), ("crc64", pa.string())]), compression="lz4")
        con = duck.connect(scratch / "atlas.duckdb", memory_gb=atlas.memory_gb, spill_dir=scratch / "spill", threads=threads)
        reps = _representative_buckets(con, sequences, bucket)
        if set(reps) - set(predictions):
            raise InternalError(f"bucket {bucket}: expected the predictions of buckets {sorted(set(reps) - set(predictions))}, which hold representatives of its members")
        sources = _MetadataSources(
            records=f"(SELECT * FROM read_parquet({duck.sql_path(records)}) WHERE {bucket_where('checksum', bucket, nulls=True)})",
            sequences=f"(SELECT * FROM read_parquet({duck.sql_path(sequences)}) WHERE {bucket_where('checksum', bucket)})",
            predictions=predictions[bucket], index=outputs.part(outputs.index, bucket),
            rep_predictions=[predictions[b] for b in reps], rep_index=[outputs.part(outputs.index, b) for b in reps],
        )  # fmt: skip
        return _write_metadata(con, sources, crc, outputs.part(outputs.metadata, bucket), kinds, inputs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _representative_buckets(con, sequences: str | Path, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The buckets of the representatives of the bucket's members (none without members)."""
    digits = 0 if bucket == WHOLE else len(bucket)
    rows = con.execute(
        f"""SELECT DISTINCT left(representative, {digits}) FROM read_parquet({duck.sql_path(sequences)})
            WHERE {bucket_where('checksum', bucket)} AND representative IS NOT NULL ORDER BY 1"""
    ).fetchall()
    return [r[0] or WHOLE for r in rows]


@dataclass(frozen=True)
class _MetadataSources:
    """What one bucket's metadata joins: its records and sequences (SQL), its predictions
    and index, and those of its members' representatives."""

    records: str
    sequences: str
    predictions: str | Path
    index: Path
    rep_predictions: list
    rep_index: list


def _stage_tables(con, src: _MetadataSources, inputs: str | Path) -> None:  # type: ignore[no-untyped-def]
    """The tables the metadata join reads: input files, each sequence's files
    (``dbs``), the bucket's structure locations, its sequences (``members``) and its
    members' representatives' predictions and locations."""
    counts = read_inputs(inputs)
    con.register("input_files", pa.table({"source_index": pa.array([c.source_index for c in counts], pa.int32()), "source_id": [c.source_id for c in counts]}))
    con.execute("CREATE TABLE sources AS SELECT * FROM input_files")
    con.execute(
        f"""CREATE TABLE dbs AS SELECT r.checksum, list_sort(list(DISTINCT s.source_id)) AS sequence_dbs
            FROM {src.records} r JOIN sources s USING (source_index)
            WHERE r.status IN {sql_in(VALID)} GROUP BY r.checksum"""
    )
    # one archive per structure (high-confidence shard first), computed once: the
    # bucket's own, and its members' representatives' (from their buckets' index files)
    first = f"QUALIFY row_number() OVER (PARTITION BY checksum ORDER BY collection = '{HIGHCONF}' DESC, archive) = 1"
    con.execute(f"CREATE TABLE located AS SELECT checksum, archive, member FROM read_parquet({duck.sql_path(src.index)}) {first}")
    con.execute(f"CREATE TABLE members AS SELECT checksum, release, representative, identity, coverage FROM {src.sequences}")
    rep_preds = f"read_parquet({duck.sql_paths(src.rep_predictions)})" if src.rep_predictions else f"read_parquet({duck.sql_path(src.predictions)})"
    con.execute(f"CREATE TABLE reps AS SELECT * FROM {rep_preds} WHERE checksum IN (SELECT representative FROM members)")
    rep_index = f"read_parquet({duck.sql_paths(src.rep_index)})" if src.rep_index else f"read_parquet({duck.sql_path(src.index)})"
    con.execute(f"CREATE TABLE rep_located AS SELECT checksum, archive, member FROM {rep_index} WHERE checksum IN (SELECT representative FROM members) {first}")


def _write_metadata(con, src: _MetadataSources, crc_path: Path, out: Path, kinds: Sequence[Sequence], inputs: str | Path) -> int:  # type: ignore[no-untyped-def]
    """Every record of ``src`` joined with its sequence's prediction and structure, in
    input order (DuckDB, spilling under its limit), with the input file's stable id, the
    release that folded the sequence (``atlas_version``) and the files that hold it
    (``sequence_dbs``). The file's provenance names the models of ``kinds`` (the
    bucket's) and of its members' representatives."""
    _stage_tables(con, src, inputs)
    models = {tuple(k[:2]) for k in kinds} | set(con.execute("SELECT DISTINCT model_id, model_version FROM reps WHERE model_id IS NOT NULL").fetchall())
    meta = provenance(sorted({m[0] for m in models}), sorted({m[1] for m in models}))
    valid = sql_in(VALID)
    member = "q.representative IS NOT NULL"
    query = f"""
        SELECT r.id, r.source, r.source_index, src.source_id, r.record_index, r.header, r.checksum, c.crc64, r.length, r.n_nonstandard,
               CASE WHEN r.status IN {valid} AND {member} THEN '{Status.REPRESENTED}'
                    WHEN r.status IN {valid}
                    THEN CASE p.status WHEN '{Status.OK}' THEN '{Status.FOLDED}' ELSE p.status END
                    ELSE r.status END AS status,
               r.status = '{Status.DUPLICATE}' AS is_duplicate,
               CASE WHEN r.status IN {valid} AND p.status <> '{Status.OK}'
                    THEN trim(r.reason || ' ' || p.error) ELSE r.reason END AS reason,
               p.plddt, p.plddt_ca, p.ptm,
               CASE WHEN p.status = '{Status.OK}' THEN p.num_conf END AS num_conf,
               p.max_pae, p.mean_pae,
               CASE WHEN p.status = '{Status.OK}' THEN p.artefact END AS artefact,
               coalesce(p.high_confidence, false) AS high_confidence,
               p.bin, p.chunk, q.release AS atlas_version, d.sequence_dbs, coalesce(p.model_id, rp.model_id) AS model_id,
               coalesce(p.model_version, rp.model_version) AS model_version, i.archive, i.member,
               q.representative, q.identity, q.coverage,
               CASE rp.status WHEN '{Status.OK}' THEN '{Status.FOLDED}' ELSE rp.status END AS rep_status,
               rp.plddt AS rep_plddt, rp.ptm AS rep_ptm, rp.high_confidence AS rep_high_confidence,
               ri.archive AS rep_archive, ri.member AS rep_member
        FROM {src.records} r
        JOIN sources src ON src.source_index = r.source_index
        LEFT JOIN read_parquet({duck.sql_path(src.predictions)}) p
               ON r.status IN {valid} AND p.checksum = r.checksum
        LEFT JOIN members q ON r.status IN {valid} AND q.checksum = r.checksum
        LEFT JOIN reps rp ON {member} AND rp.checksum = q.representative
        LEFT JOIN dbs d ON r.status IN {valid} AND d.checksum = r.checksum
        LEFT JOIN read_parquet({duck.sql_path(crc_path)}) c ON c.checksum = r.checksum
        LEFT JOIN located i ON i.checksum = p.checksum
        LEFT JOIN rep_located ri ON ri.checksum = rp.checksum
        ORDER BY r.source_index, r.record_index"""
    n = write_batches(con.sql(query).to_arrow_reader(1 << 17), out, _with_provenance(METADATA_SCHEMA, meta), row_group_size=1 << 18)
    con.close()
    return n


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"foldatlas": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "fair-esm", "pyarrow", "duckdb", "snakemake", "foldcomp", "modelcif"):
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
        "high_confidence": q(
            f"""SELECT count(*) FROM (SELECT checksum FROM read_parquet({meta}) WHERE high_confidence
                UNION SELECT representative FROM read_parquet({meta}) WHERE rep_high_confidence)"""
        )[0][0],
        "high_confidence_records": q(f"SELECT count(*) FROM read_parquet({meta}) WHERE high_confidence")[0][0],
        **dict(zip(("represented", "represented_records", "representatives", "represented_by_high_confidence", "represented_without_structure"), q(
            f"""SELECT count(DISTINCT checksum), count(*), count(DISTINCT representative), count(DISTINCT checksum) FILTER (WHERE rep_high_confidence),
                       count(DISTINCT checksum) FILTER (WHERE rep_status <> '{Status.FOLDED}')
                FROM read_parquet({meta}) WHERE status = '{Status.REPRESENTED}'"""
        )[0])),
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
