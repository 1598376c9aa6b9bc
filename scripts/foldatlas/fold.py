"""``fold_chunk``: fold every sequence of one chunk, resumably, with I/O off the GPU's path.

Progress is committed in *segments* under a partial folder
(``<root>/fold/partial/chunk_NNNNNN/``): ``seg_K.structures.parquet``,
``seg_K.embeddings.parquet`` and, last, ``seg_K.predictions.parquet``, each written
atomically; a segment counts only once its predictions file exists. A job killed at any
moment and started again skips the sequences of committed segments, so nothing is folded
twice into the outputs and nothing is lost. When every sequence of the chunk has a
record, the segments are merged into the chunk's final outputs (each written
atomically) and the partial folder is removed.

PDB text, its compression into archive entries, and Parquet writing run in a writer
thread fed by a bounded queue, so the model's next forward pass does not wait for them.
The chunk archive holds one tar entry per structure file, its data gzip-compressed (the
atlas's shard format, see :mod:`foldatlas.archive`); the merge at the end of the job only concatenates the
compressed entries and records each one's byte range (``archive_offset``,
``archive_length``) in the predictions, from which the atlas copies them unchanged.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import faults
from .archive import archive_end, structure_entries
from .atomic import atomic_path
from .engine import EngineSettings, FoldEngine
from .errors import FoldatlasError, InternalError
from .layout import ChunkOutputs
from .prediction import Prediction, SeqItem
from .seal import chunk_seal, seal_chunk
from .settings import EmbeddingSettings, FoldSettings, StructureSettings
from .status import Status
from .structures import member_name
from .tables import CHUNK_SCHEMA, OUTPUTS_KEY, PREDICTIONS_SCHEMA, SEGMENT_STRUCTURES_SCHEMA, compress_pae, embeddings_schema, write_batches

__all__ = ["SEGMENT_FORMAT", "ALLOC_CONF", "fold_chunk", "fold_chunk_job", "fold_package_job", "device_name", "configure_cuda_allocator"]

log = logging.getLogger("foldatlas.fold")

#: Version of the partial-folder layout; segments of another version are discarded.
SEGMENT_FORMAT = 3
_SETTINGS_FILE = "settings.json"


class _SegmentStore:
    """The partial folder of one chunk: committed segments and what they hold."""

    def __init__(self, folder: Path, fingerprint: dict[str, object]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        settings = folder / _SETTINGS_FILE
        text = json.dumps(fingerprint, sort_keys=True)
        if settings.exists() and settings.read_text() != text:
            log.warning(
                "partial results in %s were made with other settings (%s): discarding them and folding the chunk afresh",
                folder, _differences(settings.read_text(), fingerprint),
            )  # fmt: skip
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
        if not settings.exists():
            with atomic_path(settings) as tmp:
                tmp.write_text(text)
        # drop uncommitted files: temporaries and segments without their predictions file
        committed = {p.name.split(".")[0] for p in folder.glob("seg_*.predictions.parquet")}
        for p in folder.iterdir():
            if p.name == _SETTINGS_FILE:
                continue
            if p.name.startswith(".") or p.name.split(".")[0] not in committed:
                p.unlink()
        self.segments = sorted(committed)

    def done(self) -> set[str]:
        done: set[str] = set()
        for seg in self.segments:
            done.update(pq.read_table(self.folder / f"{seg}.predictions.parquet", columns=["checksum"])["checksum"].to_pylist())
        return done

    def next_name(self) -> str:
        last = int(self.segments[-1].split("_")[1]) if self.segments else 0
        name = f"seg_{last + 1:06d}"
        self.segments.append(name)
        return name

    def paths(self) -> list[Path]:
        """Path prefixes of the committed segments, in order (``<folder>/seg_NNNNNN``)."""
        return [self.folder / seg for seg in self.segments]


def _differences(old_text: str, new: dict[str, object]) -> str:
    """``key: old -> new`` for each fingerprint key that changed (for the log)."""
    try:
        old = json.loads(old_text)
    except ValueError:
        return "unreadable settings file"
    if not isinstance(old, dict):
        return "unreadable settings file"
    new = json.loads(json.dumps(new))  # the same JSON types as the stored one
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def _remarks(context: dict[str, object], p: Prediction) -> list[str]:
    return [
        f"foldatlas model {context['model_id']} ({context['model_version']})",
        f"checksum {p.checksum} length {p.length}",
        f"pLDDT {p.plddt:.4f} pTM {p.ptm:.4f} (0-1); B-factors are pLDDT 0-100",
    ]


def _prediction_row(p: Prediction, member: str | None, context: dict[str, object]) -> dict[str, object]:
    """One row of ``predictions.parquet`` (archive byte ranges are added at the merge)."""
    ok = p.status == Status.OK
    return {
        "checksum": p.checksum,
        "length": p.length,
        "status": str(p.status),
        "error": p.error,
        "plddt": p.plddt if ok else None,
        "plddt_ca": p.plddt_ca if ok else None,
        "ptm": p.ptm if ok else None,
        "num_conf": p.num_conf,
        "max_pae": p.max_pae if ok else None,
        "mean_pae": p.mean_pae if ok else None,
        "artefact": p.artefact,
        "residue_plddt": None if p.residue_plddt is None else p.residue_plddt.tolist(),
        "pae": compress_pae(p.pae),
        "batch_size": p.batch_size,
        "seconds": p.seconds,
        "chunk_size": p.chunk_size,
        "member": member,
        **context,
    }


class _Writer(threading.Thread):
    """Turns predictions into segment files off the main thread."""

    def __init__(self, store: _SegmentStore, *, schema: pa.Schema, context: dict[str, object], commit_seconds: float, settings: EngineSettings, formats: tuple[str, ...] = ("pdb",)) -> None:
        super().__init__(name="foldatlas-writer", daemon=True)
        self.store = store
        self.emb_schema = schema
        self.context = context
        self.commit_seconds = commit_seconds
        self.np_dtype = np.float16 if settings.embedding_dtype == "float16" else np.float32
        self.per_residue = settings.per_residue_embeddings
        self.formats = formats
        self.queue: queue.Queue[list[Prediction] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self._reset()

    def _reset(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.structures: list[tuple[str, str, bytes]] = []
        self.emb_rows: dict[str, list] = {name: [] for name in self.emb_schema.names}
        self.opened = time.monotonic()

    def put(self, preds: list[Prediction]) -> None:
        if self.error is not None:
            raise FoldatlasError(f"writer thread failed: {self.error}") from self.error
        self.queue.put(preds)

    def finish(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise FoldatlasError(f"writer thread failed: {self.error}") from self.error

    def run(self) -> None:
        try:
            while True:
                preds = self.queue.get()
                if preds is None:
                    self._commit()
                    self.queue.task_done()
                    return
                for p in preds:
                    self._add(p)
                if time.monotonic() - self.opened >= self.commit_seconds:
                    self._commit()
                self.queue.task_done()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self.error = exc
            log.exception("writer thread failed")
            while True:  # drain so the main thread never blocks on a full queue
                try:
                    if self.queue.get(timeout=1) is None:
                        return
                except queue.Empty:
                    continue

    def _add(self, p: Prediction) -> None:
        member = None
        if p.status == Status.OK:
            member = member_name(p.checksum)
            entries = structure_entries(p, formats=self.formats, remarks=_remarks(self.context, p), context=self.context)
            self.structures.append((p.checksum, member, entries))
            for layer, vec in p.embeddings.items():
                self.emb_rows["checksum"].append(p.checksum)
                self.emb_rows["layer"].append(layer)
                self.emb_rows["embedding"].append(vec.astype(self.np_dtype))
                if self.per_residue:
                    self.emb_rows["residue_embeddings"].append(list(p.residue_embeddings[layer].astype(self.np_dtype)))
        self.rows.append(_prediction_row(p, member, self.context))

    def _commit(self) -> None:
        if not self.rows:
            return
        name = self.store.next_name()
        folder = self.store.folder
        s_cols = list(zip(*self.structures)) if self.structures else [[], [], []]
        structures = pa.table({"checksum": list(s_cols[0]), "member": list(s_cols[1]), "entry": list(s_cols[2])}, schema=SEGMENT_STRUCTURES_SCHEMA)
        with atomic_path(folder / f"{name}.structures.parquet") as tmp:
            pq.write_table(structures, tmp, compression="none")  # entries are gzip already
        emb = pa.table({k: self._emb_array(k, v) for k, v in self.emb_rows.items()}, schema=self.emb_schema)
        with atomic_path(folder / f"{name}.embeddings.parquet") as tmp:
            pq.write_table(emb, tmp, compression="zstd")
        preds = pa.Table.from_pylist(self.rows, schema=PREDICTIONS_SCHEMA)
        with atomic_path(folder / f"{name}.predictions.parquet") as tmp:  # the commit marker
            pq.write_table(preds, tmp, compression="zstd")
        log.debug("committed %s: %d sequences", name, len(self.rows))
        self._reset()
        faults.kill_point("segment_committed")

    def _emb_array(self, name: str, values: list) -> pa.Array:
        field = self.emb_schema.field(name)
        if name == "embedding":
            flat = np.concatenate(values) if values else np.zeros(0, self.np_dtype)
            return pa.FixedSizeListArray.from_arrays(pa.array(flat), type=field.type)
        return pa.array(values, type=field.type)


class _Progress:
    def __init__(self, chunk: str, items: list[SeqItem], done: set[str], every: float) -> None:
        self.chunk, self.total_seqs, self.total_res = chunk, len(items), sum(it.length for it in items)
        self.seqs = self.start_seqs = len(done)
        self.res = self.start_res = sum(it.length for it in items if it.checksum in done)
        self.started = self.last = time.monotonic()
        self.every = every

    def update(self, n: int, residues: int, *, force: bool = False) -> None:
        self.seqs += n
        self.res += residues
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate_res = (self.res - self.start_res) / elapsed
        eta = (self.total_res - self.res) / rate_res if rate_res > 0 else float("inf")
        log.info(
            "chunk %s: %d/%d sequences, %d/%d residues, %.2f seq/s, %.0f residues/s, ETA %s",
            self.chunk, self.seqs, self.total_seqs, self.res, self.total_res,
            (self.seqs - self.start_seqs) / elapsed, rate_res,
            time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "unknown",
        )  # fmt: skip


def device_name(engine: FoldEngine) -> str:
    """``cpu`` or ``cuda:N (GPU name)``."""
    from .model import device_label

    return device_label(engine.device)[0]


@dataclass(frozen=True)
class _Job:
    """What a fold job records with every prediction, and what its segments must share.

    The resume fingerprint holds everything that changes the predictions: the weights
    (by content), the language model's precision, TF32, the GPU model (a chunk resumed
    on another GPU class must not mix two numerics), and the result settings.
    """

    context: dict[str, object]
    fingerprint: dict[str, object]
    emb_schema: pa.Schema

    @classmethod
    def of(cls, engine: FoldEngine) -> _Job:
        from .model import device_label

        s, loaded = engine.settings, engine.loaded
        label, kind = device_label(engine.device)
        context = {
            "num_recycles": s.num_recycles,
            "device": label,
            "lm_precision": loaded.lm_precision,
            "tf32": loaded.tf32,
            "model_id": loaded.model_id,
            "model_version": loaded.model_version,
            "weights_checksum": loaded.weights_checksum,
        }
        fingerprint = {
            "segment_format": SEGMENT_FORMAT,
            "model_id": loaded.model_id,
            "model_version": loaded.model_version,
            "weights_checksum": loaded.weights_checksum,
            "lm_precision": loaded.lm_precision,
            "tf32": loaded.tf32,
            "device_kind": kind,
            "settings": s.result_settings(),
            "embedding_layers": list(engine.embedding_layers),
            "embedder": engine.embedder.model_id if engine.embedder is not None else None,
        }
        return cls(context, fingerprint, embeddings_schema(engine.embedding_dim, s.embedding_dtype, per_residue=s.per_residue_embeddings))


def fold_chunk(
    chunk_path: str | Path,
    outputs: ChunkOutputs,
    partial_dir: str | Path,
    engine: FoldEngine,
    *,
    commit_seconds: float,
    progress_seconds: float,
    formats: tuple[str, ...] = ("pdb",),
    outputs_key: str | None = None,
) -> dict[str, int]:
    """Fold one chunk into ``outputs``; resumes from ``partial_dir``; returns status counts.

    Every sequence of the chunk ends with exactly one row in the predictions (status
    ok, oom or error); ok sequences have one structure in the archive (``<checksum>.pdb``)
    and one embedding row per layer.
    """
    chunk_path = Path(chunk_path)
    table = pq.read_table(chunk_path, schema=CHUNK_SCHEMA)
    items = [SeqItem(c, s) for c, s in zip(table["checksum"].to_pylist(), table["sequence"].to_pylist())]
    job = _Job.of(engine)
    store = _SegmentStore(Path(partial_dir), {**job.fingerprint, "formats": list(formats)})
    done = store.done()
    todo = [it for it in items if it.checksum not in done]
    name = chunk_path.stem.removeprefix("chunk_")
    log.info("chunk %s: %d sequences, %d already folded, %d to fold", name, len(items), len(items) - len(todo), len(todo))
    progress = _Progress(name, items, done, progress_seconds)
    writer = _Writer(store, schema=job.emb_schema, context=job.context, commit_seconds=commit_seconds, settings=engine.settings, formats=formats)
    writer.start()
    try:
        for batch_items in engine.batches(todo):
            writer.put(engine.predict(batch_items))
            progress.update(len(batch_items), sum(it.length for it in batch_items))
    finally:
        writer.finish()
    progress.update(0, 0, force=True)
    counts = _merge(store, items, outputs, job.emb_schema, outputs_key)
    faults.kill_point("before_seal")
    seal_chunk(outputs)  # last: publishing reads it instead of hashing the files again
    shutil.rmtree(store.folder, ignore_errors=True)
    log.info("chunk %s done: %s", name, counts)
    return counts


def _merged_predictions(segs: list[Path], order: dict[str, int], folder: Path) -> pa.Table:
    """The committed predictions, one per sequence of the chunk, in chunk order."""
    preds = pa.concat_tables([pq.read_table(f"{p}.predictions.parquet", schema=PREDICTIONS_SCHEMA) for p in segs]) if segs else PREDICTIONS_SCHEMA.empty_table()
    checksums = preds["checksum"].to_pylist()
    if len(set(checksums)) != len(checksums):
        dup = next(c for c in checksums if checksums.count(c) > 1)
        raise InternalError(f"sequence {dup} was recorded twice in {folder}")
    missing = set(order) - set(checksums)
    if missing:
        raise InternalError(f"{len(missing)} sequences of the chunk have no record, e.g. {sorted(missing)[0]}")
    idx = np.argsort([order.get(c, len(order)) for c in checksums], kind="stable")
    return preds.take(pa.array(idx)).filter(pa.array([c in order for c in np.array(checksums, dtype=object)[idx]]))


def _write_archive(path: Path, segs: list[Path], order: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Concatenate the segments' compressed entries into the chunk archive; return each
    structure's byte range (offset, length)."""
    ranges: dict[str, tuple[int, int]] = {}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for entries in _sorted_structures(segs, order):
                for checksum, entry in entries:
                    ranges[checksum] = (fh.tell(), len(entry))
                    fh.write(entry)
                    faults.kill_point("archive_entry")
            fh.write(archive_end())
    return ranges


def _merge(store: _SegmentStore, items: list[SeqItem], outputs: ChunkOutputs, emb_schema: pa.Schema, outputs_key: str | None) -> dict[str, int]:
    order = {it.checksum: k for k, it in enumerate(items)}
    # a seal of files about to be replaced, and the commit marker: a merge killed
    # half-way never looks complete next to an earlier fold's predictions
    outputs.index.unlink(missing_ok=True)
    outputs.predictions.unlink(missing_ok=True)
    segs = store.paths()
    preds = _merged_predictions(segs, order, store.folder)
    ranges = _write_archive(outputs.structures, segs, order)
    faults.kill_point("between_outputs")

    def emb_batches() -> Iterable[pa.RecordBatch]:
        for p in segs:
            t = pq.read_table(f"{p}.embeddings.parquet", schema=emb_schema)
            keep = [order.get(c) is not None for c in t["checksum"].to_pylist()]
            yield from t.filter(pa.array(keep, pa.bool_())).to_batches()

    write_batches(emb_batches(), outputs.embeddings, emb_schema, row_group_size=8192)
    at = [ranges.get(c) for c in preds["checksum"].to_pylist()]
    for column, k in (("archive_offset", 0), ("archive_length", 1)):
        preds = preds.set_column(preds.schema.get_field_index(column), column, pa.array([None if r is None else r[k] for r in at], pa.int64()))
    schema = PREDICTIONS_SCHEMA if outputs_key is None else PREDICTIONS_SCHEMA.with_metadata({**(PREDICTIONS_SCHEMA.metadata or {}), OUTPUTS_KEY: outputs_key.encode()})
    write_batches(preds.to_batches(), outputs.predictions, schema)
    statuses = preds["status"].to_pylist()
    return {k: statuses.count(k) for k in sorted(set(statuses))}


def _sorted_structures(segs: list[Path], order: dict[str, int]) -> Iterable[list[tuple[str, bytes]]]:
    """``(checksum, entry)`` of every structure, segment by segment, in chunk order within each."""
    for p in segs:
        t = pq.read_table(f"{p}.structures.parquet", schema=SEGMENT_STRUCTURES_SCHEMA)
        rows = [(order[c], c, e) for c, e in zip(t["checksum"].to_pylist(), t["entry"].to_pylist()) if c in order]
        rows.sort()
        yield [(c, e) for _, c, e in rows]


#: The CUDA caching allocator's setting for fold jobs unless the user set one: batches of
#: changing shapes fragment fixed segments until a pass that fits runs out of memory.
ALLOC_CONF = "expandable_segments:True"
_ALLOC_VARS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def configure_cuda_allocator(environ: dict[str, str] | None = None) -> str | None:
    """Set ``PYTORCH_CUDA_ALLOC_CONF`` to :data:`ALLOC_CONF` unless the user set it (or
    ``PYTORCH_ALLOC_CONF``); return what was set, or None. Must run before CUDA starts."""
    import os

    env = os.environ if environ is None else environ
    if any(env.get(name) for name in _ALLOC_VARS):
        log.info("CUDA allocator settings from the environment: %s", {n: env[n] for n in _ALLOC_VARS if env.get(n)})
        return None
    env["PYTORCH_CUDA_ALLOC_CONF"] = ALLOC_CONF
    return ALLOC_CONF


def _free_gpu_memory(device: object) -> int | None:
    """Bytes a forward pass can still get on ``device`` (None on the CPU): free device
    memory plus what torch's allocator holds unused."""
    import torch

    if getattr(device, "type", "cpu") != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def fold_chunk_job(
    chunk_path: str | Path,
    outputs: ChunkOutputs,
    partial_dir: str | Path,
    *,
    fold: FoldSettings,
    embeddings: EmbeddingSettings,
    structures: StructureSettings | None = None,
    threads: int | None = None,
    outputs_key: str | None = None,
) -> dict[str, int]:
    """Everything one ``fold_chunk`` job does: load the model once, fold, merge.

    ``threads`` (default ``fold.threads``) are torch's intra-op threads. The memory
    budget is measured after the model (and a stand-alone embedder) are loaded.
    ``outputs_key`` (:func:`foldatlas.settings.fold_outputs_key` of the run's config) is
    recorded in ``predictions.parquet`` (key-value metadata ``foldatlas_outputs_key``),
    so that the assembly can refuse outputs folded under other settings.
    """
    done = fold_package_job([(chunk_path, outputs, partial_dir)], fold=fold, embeddings=embeddings, structures=structures, threads=threads, outputs_key=outputs_key)
    return done[0]


def fold_package_job(
    chunks: Sequence[tuple[str | Path, ChunkOutputs, str | Path]],
    *,
    fold: FoldSettings,
    embeddings: EmbeddingSettings,
    structures: StructureSettings | None = None,
    threads: int | None = None,
    outputs_key: str | None = None,
) -> list[dict[str, int]]:
    """One job folding several chunks in turn (``fold.chunks_per_job``) with the model
    loaded once: ``chunks`` are (chunk file, outputs, partial folder) as for
    :func:`fold_chunk_job`. A chunk whose outputs are complete already (a package run
    again after a failure in a later chunk) is not folded again: its predictions hold
    exactly the chunk's sequences under ``outputs_key``. Returns each chunk's counts."""
    configure_cuda_allocator()
    import torch

    from .esm2 import Esm2Embedder
    from .model import load_folding_model

    torch.set_num_threads(max(1, threads or fold.threads))
    faults.kill_point("model_load")
    loaded = load_folding_model(fold.model, weights=fold.weights, device=fold.device, precision=fold.precision)
    embedder = Esm2Embedder(embeddings.model, layers=embeddings.layers, device=loaded.device) if embeddings.model else None
    free = _free_gpu_memory(loaded.device)
    settings = EngineSettings.resolve(fold, embeddings, free_memory=free)
    if free is not None:
        log.info("%.1f GiB of GPU memory free after loading; memory budget %.1f GiB per forward pass", free / 2**30, settings.memory_budget / 2**30)
    engine = FoldEngine(loaded, settings, standalone_embedder=embedder)
    formats = structures.formats if structures is not None else ("pdb",)
    out = []
    try:
        for k, (chunk_path, outputs, partial_dir) in enumerate(chunks):
            if (counts := _complete(chunk_path, outputs, outputs_key)) is not None:
                log.info("chunk %s: folded already by an earlier attempt of this package (%d/%d)", outputs.predictions.parent.name, k + 1, len(chunks))
                chunk_seal(outputs)
                out.append(counts)
                continue
            out.append(fold_chunk(
                chunk_path, outputs, partial_dir, engine,
                commit_seconds=fold.commit_seconds, progress_seconds=fold.progress_seconds, formats=formats, outputs_key=outputs_key,
            ))  # fmt: skip
    finally:
        engine.close()
    return out


def _complete(chunk_path: str | Path, outputs: ChunkOutputs, outputs_key: str | None) -> dict[str, int] | None:
    """The status counts of a chunk whose three outputs exist and whose predictions hold
    exactly its sequences, folded under ``outputs_key``; None otherwise."""
    if not all(p.exists() for p in (outputs.predictions, outputs.embeddings, outputs.structures)):
        return None
    preds = pq.read_table(outputs.predictions, columns=["checksum", "status"])
    meta = pq.read_schema(outputs.predictions).metadata or {}
    if outputs_key is not None and meta.get(OUTPUTS_KEY, b"").decode() != outputs_key:
        return None
    if sorted(preds["checksum"].to_pylist()) != sorted(pq.read_table(chunk_path, columns=["checksum"])["checksum"].to_pylist()):
        return None
    statuses = preds["status"].to_pylist()
    return {s: statuses.count(s) for s in sorted(set(statuses))}
