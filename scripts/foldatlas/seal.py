"""A chunk's seal: what publishing a folded chunk needs, computed once by the fold job
that wrote it, while its files are fresh.

``<store>/<fingerprint>/chunks/chunk_NNNNNN/index.parquet`` holds

- one row per structure of the chunk (:data:`~foldatlas.tables.STORE_INDEX_SCHEMA`):
  where its PDB member's data lies in the chunk's ``structures.tar``, each tar header
  read back once and its member name checked against the predictions;
- in its key-value metadata (``foldatlas_seal``, JSON): the numbers of predictions and
  structures, the SHA-256 of the predictions' checksums sorted (the chunk's content,
  whatever its order), and the SHA-256, size, modification time, inode and status-change
  time of ``predictions.parquet``, ``embeddings.parquet`` and ``structures.tar``.

Publishing a release then reads one small file per chunk instead of hashing every byte
of the store's new files and seeking to every structure's tar header (at 10^9 sequences:
tens of TB and ~10^9 random reads, ~10-14 h in one job; see bench/RESULTS.md).

A seal is taken as it is only while each file keeps the identity it recorded. Every fold
job removes the seal (and its predictions, the commit marker) before it writes a chunk's
files, so a seal that no longer holds means the files were moved, copied or damaged:
they are hashed again, and sealed again when their content is the sealed one; otherwise
publishing stops (:func:`chunk_seal`). A chunk without a seal (folded by foldatlas < 0.6,
or a fold job killed before its seal) is sealed when it is next needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .archive import BLOCK, header_at
from .errors import StaleOutputError
from .layout import ChunkOutputs
from .tables import STORE_INDEX_SCHEMA, write_table

__all__ = ["SEAL_KEY", "Seal", "chunk_seal", "checksums_digest", "file_checksum", "read_seal", "seal_chunk", "seal_rows"]

log = logging.getLogger(__name__)

#: Key of the seal's record in the index file's Parquet key-value metadata.
SEAL_KEY = b"foldatlas_seal"
_FORMAT = 1
_FILES = ("predictions", "embeddings", "structures")


def file_checksum(path: str | os.PathLike[str]) -> dict:
    """``{"sha256": ..., "bytes": ...}`` of a file (read in 4 MiB blocks)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
            n += len(block)
    return {"sha256": h.hexdigest(), "bytes": n}


def checksums_digest(checksums: Iterable[str]) -> str:
    """SHA-256 of sequence checksums in sorted order, one per line: equal for two
    collections exactly when they hold the same checksums (with repeats)."""
    return hashlib.sha256("".join(f"{c}\n" for c in sorted(checksums)).encode()).hexdigest()


@dataclass(frozen=True)
class Seal:
    """A chunk's seal (see the module's docstring)."""

    chunk: int
    #: Rows of predictions.parquet (one per sequence of the chunk).
    sequences: int
    #: Rows of the index (one per ok prediction: a structure in the archive).
    structures: int
    #: :func:`checksums_digest` of the predictions' checksums.
    checksums_sha256: str
    #: ``predictions``, ``embeddings``, ``structures``: sha256, bytes, mtime_ns, ino, ctime_ns.
    files: dict[str, dict]

    def release_files(self) -> dict[str, dict]:
        """The files' SHA-256 and size, as a release record lists them."""
        return {f: {"sha256": v["sha256"], "bytes": v["bytes"]} for f, v in self.files.items()}


def _stat(path: Path) -> dict[str, int]:
    """What a seal takes a file's identity to be: size, modification time, inode and
    status-change time (an atomic replacement is a new inode; ``utime`` cannot set the
    ctime; a copy is a new inode too, and is then hashed again, see :func:`chunk_seal`)."""
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns}


def _holds(files: dict[str, dict], outputs: ChunkOutputs) -> bool:
    """Whether every file has the identity the seal recorded."""
    try:
        return all(_stat(getattr(outputs, f)) == {k: files[f][k] for k in ("bytes", "mtime_ns", "ino", "ctime_ns")} for f in _FILES)
    except (OSError, KeyError, TypeError):
        return False


def _archive_name(outputs: ChunkOutputs) -> str:
    """The archive's path relative to the fingerprint's folder: chunks/chunk_N/structures.tar."""
    folder = outputs.structures.parent
    return f"{folder.parent.name}/{folder.name}/{outputs.structures.name}"


def seal_rows(outputs: ChunkOutputs, preds: pa.Table) -> pa.Table:
    """Where each ok prediction (``preds``: the chunk's predictions, at least ``checksum,
    status, member, archive_offset, plddt, ptm``) has its PDB member in the chunk's archive
    (the fold job's recorded byte range, its tar header read to check the member's name
    and size).

    Raises
    ------
    StaleOutputError
        The archive holds no tar header of the predicted member at its recorded offset.
    """
    ok = preds.filter(pc.equal(preds["status"], "ok"))
    sizes = []
    with open(outputs.structures, "rb") as fh:
        for member, offset in zip(ok["member"].to_pylist(), ok["archive_offset"].to_pylist()):
            try:
                name, size = header_at(fh, offset, str(outputs.structures))
            except ValueError as exc:  # not a tar header there (the message names the file)
                raise StaleOutputError(str(exc).split(": ", 1)[0], f"{str(exc).split(': ', 1)[1]}; expected member {member}: delete the chunk's folder and fold it again") from None
            if name != member:
                raise StaleOutputError(str(outputs.structures), f"expected member {member} at byte {offset}, found {name!r}: delete the chunk's folder and fold it again")
            sizes.append(size)
    n = ok.num_rows
    rows = {"checksum": ok["checksum"], "chunk": pa.array([outputs.chunk] * n, pa.int32()), "archive": pa.array([_archive_name(outputs)] * n, pa.string()),
            "member": ok["member"], "data_offset": pc.add(ok["archive_offset"], BLOCK), "data_length": pa.array(sizes, pa.int64()),
            "plddt": ok["plddt"], "ptm": ok["ptm"]}  # fmt: skip
    return pa.table(rows).select(STORE_INDEX_SCHEMA.names).cast(STORE_INDEX_SCHEMA)


def seal_chunk(outputs: ChunkOutputs) -> Seal:
    """Compute the seal of a chunk's three files and write it (atomically) as the chunk's
    ``index.parquet``; return it.

    Raises
    ------
    StaleOutputError
        The archive does not hold the predicted members at their recorded offsets, or a
        file changed while it was being sealed.
    """
    stats = {f: _stat(getattr(outputs, f)) for f in _FILES}
    preds = pq.read_table(outputs.predictions, columns=["checksum", "status", "member", "archive_offset", "plddt", "ptm"])
    rows = seal_rows(outputs, preds)
    checksums = preds["checksum"]
    files = {f: {**file_checksum(getattr(outputs, f)), **stats[f]} for f in _FILES}
    if any(_stat(getattr(outputs, f)) != stats[f] for f in _FILES):
        raise StaleOutputError(str(outputs.predictions.parent), "the chunk's files changed while it was being sealed: is another job writing them?")
    seal = Seal(outputs.chunk, len(checksums), rows.num_rows, checksums_digest(checksums.to_pylist()), files)
    record = {"format": _FORMAT, "chunk": seal.chunk, "sequences": seal.sequences, "structures": seal.structures, "checksums_sha256": seal.checksums_sha256, "files": files}
    schema = STORE_INDEX_SCHEMA.with_metadata({**(STORE_INDEX_SCHEMA.metadata or {}), SEAL_KEY: json.dumps(record, sort_keys=True).encode()})
    write_table(rows, outputs.index, schema)
    return seal


def _recorded(outputs: ChunkOutputs) -> Seal | None:
    """The seal ``index.parquet`` records for this chunk, whether or not it still holds;
    None when there is none, or it is unreadable, of another format or another chunk's."""
    try:
        raw = (pq.read_schema(outputs.index).metadata or {}).get(SEAL_KEY)
        rec = json.loads(raw) if raw else None
        if not isinstance(rec, dict) or rec.get("format") != _FORMAT or rec.get("chunk") != outputs.chunk:
            return None
        files = {f: {k: rec["files"][f][k] for k in ("sha256", "bytes", "mtime_ns", "ino", "ctime_ns")} for f in _FILES}
        seal = Seal(int(rec["chunk"]), int(rec["sequences"]), int(rec["structures"]), str(rec["checksums_sha256"]), files)
    except (OSError, pa.ArrowException, ValueError, KeyError, TypeError):
        return None
    return seal


def read_seal(outputs: ChunkOutputs) -> Seal | None:
    """The chunk's seal when it holds for its files as they are now (each file's size,
    modification time, inode and status-change time as recorded); None otherwise."""
    seal = _recorded(outputs)
    return seal if seal is not None and _holds(seal.files, outputs) else None


def chunk_seal(outputs: ChunkOutputs) -> Seal:
    """The chunk's seal: read when it holds; computed (and written) when there is none (a
    chunk folded by foldatlas < 0.6, or a fold job killed before sealing); computed again
    when a file's identity changed but not its content (a copy).

    Raises
    ------
    StaleOutputError
        A file's content changed after its fold job sealed it (every fold job removes
        the seal before it writes the files again: a change after sealing is damage).
    """
    seal = _recorded(outputs)
    if seal is not None and _holds(seal.files, outputs):
        return seal
    if seal is None:
        log.info("chunk %s: not sealed (folded by foldatlas < 0.6, or killed before its seal): sealing it now", outputs.predictions.parent.name)
        return seal_chunk(outputs)
    for f in _FILES:
        path = getattr(outputs, f)
        if not path.exists() or file_checksum(path) != {k: seal.files[f][k] for k in ("sha256", "bytes")}:
            raise StaleOutputError(str(path), "changed after its fold job sealed it (SHA-256 or size differs from the seal's): delete the chunk's folder and fold it again")
    log.info("chunk %s: files moved or copied since they were sealed, their content unchanged: sealing them again", outputs.predictions.parent.name)
    return seal_chunk(outputs)
