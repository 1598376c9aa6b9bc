"""Structure archives that every tar reader reads whole, with one-seek random access.

A shard is an **uncompressed** ``.tar`` whose members are ``<checksum>.pdb.gz`` (and
``<checksum>.cif.gz`` with ``structures.formats: [pdb, cif]``), each member's data a
complete gzip file: the AlphaFold Database's bulk layout. GNU tar, Python ``tarfile`` in
seek (``r:``) and stream (``r|``) mode, WebDataset and foldseek all see every member;
``index.parquet`` gives the byte range of each member's data, so one structure is one
seek and one read (:func:`read_member`), then a gunzip.

Fold jobs write their chunk archives in the same form (:func:`gzip_entry`, compressed
in the writer thread while the model runs) and record each structure's byte range, so
the atlas files structures into its shards by copying their tar entries byte for byte
(:meth:`ShardWriter.add_block`), after checking every tar header and every gzip CRC
(:func:`check_block`). Reading never touches the file system beyond the archive, and
:func:`extract_structure` writes only ``<dest>/<checksum>.pdb``.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import __version__
from .atomic import atomic_path, staging_name
from .layout import shard_name
from .prediction import Prediction
from .structures import member_name, modelcif_text, pdb_text, safe_member_name

__all__ = [
    "header_at",
    "BLOCK",
    "Member",
    "IndexEntry",
    "gzip_entry",
    "structure_entries",
    "archive_end",
    "foldcomp_compress",
    "foldcomp_round_trip",
    "check_block",
    "ShardWriter",
    "block_entry",
    "copy_members",
    "FoldcompWriter",
    "read_member",
    "extract_structure",
    "iter_tar_members",
    "read_structure_archive",
]

#: Size of a tar block (header and padding unit), bytes.
BLOCK = 512
#: Fixed mtime of members and gzip headers: identical inputs give identical bytes.
ARCHIVE_MTIME = 1_700_000_000


@dataclass(frozen=True)
class Member:
    """One checked tar entry of a structure block: member name, where its data starts
    within the block, its compressed (gzip) size, and the decompressed file."""

    name: str
    data_start: int
    data_length: int
    text: bytes

    @property
    def entry_length(self) -> int:
        """Bytes of the whole entry: header, data, padding."""
        return BLOCK + self.data_length + (-self.data_length % BLOCK)


@dataclass(frozen=True)
class IndexEntry:
    """Where one structure lives: archive (relative to the atlas folder), member, and the
    byte range of the member's data (a gzip file) in it; ``size`` is the decompressed size.
    ``cif_*`` locate the ModelCIF member when the block has one."""

    checksum: str
    archive: str
    member: str
    data_offset: int
    data_length: int
    size: int
    cif_member: str | None = None
    cif_offset: int | None = None
    cif_length: int | None = None


def gzip_entry(member: str, data: bytes, *, compresslevel: int = 6) -> bytes:
    """One tar entry (USTAR header, ``data`` gzip-compressed as a complete gzip file,
    padding): the member ``member`` (``<checksum>.pdb.gz``) of an uncompressed tar."""
    comp = gzip.compress(data, compresslevel=compresslevel, mtime=ARCHIVE_MTIME)
    info = tarfile.TarInfo(member)
    info.size, info.mtime, info.mode = len(comp), ARCHIVE_MTIME, 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT) + comp + b"\0" * (-len(comp) % BLOCK)


def structure_entries(p: Prediction, *, formats: Sequence[str] = ("pdb",), remarks: list[str] | None = None, context: dict[str, object] | None = None) -> bytes:
    """The tar entries of one folded structure, one per format (``pdb`` first): what a
    fold job's writer thread appends to its chunk archive for ``p``.

    ``context`` gives ``model_id`` and ``model_version`` (recorded in the ModelCIF file).
    """
    ctx = context or {}
    pdb = pdb_text(p.aatype, p.positions, p.atom_mask, p.atom_plddt, remarks=remarks)  # type: ignore[arg-type]
    block = gzip_entry(member_name(p.checksum, "pdb"), pdb.encode("ascii"))
    if "cif" in formats:
        cif = modelcif_text(
            p.aatype, p.positions, p.atom_mask, p.atom_plddt, checksum=p.checksum, ptm=p.ptm,  # type: ignore[arg-type]
            model_id=str(ctx.get("model_id", "")), model_version=str(ctx.get("model_version", "")), software_version=__version__,
        )  # fmt: skip
        block += gzip_entry(member_name(p.checksum, "cif"), cif.encode("utf-8"))
    return block


def archive_end() -> bytes:
    """The end-of-archive marker: two zero blocks."""
    return b"\0" * (2 * BLOCK)


def _header(block: bytes, where: str) -> tarfile.TarInfo:
    try:
        return tarfile.TarInfo.frombuf(block[:BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:  # includes a wrong header checksum
        raise ValueError(f"{where}: expected a tar header, found other bytes ({exc})") from None


def header_at(fh: BinaryIO, offset: int, where: str) -> tuple[str, int]:
    """``(member name, data bytes)`` of the tar header at ``offset`` of an open archive.

    Raises
    ------
    ValueError
        The bytes there are not a tar header (its checksum does not hold).
    """
    fh.seek(offset)
    info = _header(fh.read(BLOCK), f"{where}: offset {offset}")
    return info.name, info.size


def _gunzip(comp: bytes, where: str) -> bytes:
    """Decompress one complete gzip file, checking its CRC-32 and length (gzip trailer)."""
    try:
        d = zlib.decompressobj(wbits=31)
        text = d.decompress(comp)
        if not d.eof or d.unused_data:
            raise ValueError("not one complete gzip file")
        return text
    except (zlib.error, ValueError) as exc:
        raise ValueError(f"{where}: expected a gzip file whose CRC checks, found other bytes ({exc})") from None


def check_block(block: bytes, checksum: str, formats: Sequence[str] = ("pdb",), *, where: str = "entry") -> list[Member]:
    """Check one structure's tar entries (one member per format, in order) and return them.

    Every header must parse (its checksum holds) and name ``<checksum>.<format>.gz``; every
    member's data must be one complete gzip file whose CRC-32 and length hold; nothing may
    follow the last entry. Costs one decompression of each member.

    Raises
    ------
    ValueError
        Naming the byte (within the block) and what was found there.
    """
    members, pos = [], 0
    for fmt in formats:
        if len(block) - pos < BLOCK:
            raise ValueError(f"{where}: expected the tar entry of {member_name(checksum, fmt)} at byte {pos}, found {len(block) - pos} bytes")
        info = _header(block[pos : pos + BLOCK], f"{where} byte {pos}")
        expect = member_name(checksum, fmt)
        if info.name != expect:
            raise ValueError(f"{where} byte {pos}: expected member {expect!r}, found {info.name!r}")
        start = pos + BLOCK
        comp = block[start : start + info.size]
        if len(comp) != info.size:
            raise ValueError(f"{where} byte {pos}: {expect} is truncated: expected {info.size} bytes of data, found {len(comp)}")
        members.append(Member(info.name, start, info.size, _gunzip(comp, f"{where} byte {start} ({expect})")))
        pos += members[-1].entry_length
    if pos != len(block):
        raise ValueError(f"{where}: {len(block) - pos} bytes after the entries of {checksum} (expected {pos} bytes in all)")
    return members


def block_entry(checksum: str, archive: str, offset: int, members: list[Member]) -> IndexEntry:
    """The index entry of a structure whose block (:func:`check_block`'s ``members``)
    starts at byte ``offset`` of ``archive`` (a path relative to the atlas folder): a
    shard's copy, or the fold job's own archive in the store (``atlas.copy_structures:
    false``)."""
    pdb, cif = members[0], (members[1] if len(members) > 1 else None)
    return IndexEntry(
        checksum, archive, pdb.name, offset + pdb.data_start, pdb.data_length, len(pdb.text),
        cif.name if cif else None, offset + cif.data_start if cif else None, cif.data_length if cif else None,
    )  # fmt: skip


class ShardWriter:
    """Writes structures into ``<folder>/<prefix>_NNNNNN.tar`` shards of at most ``shard_size``."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str, shard_size: int, *, archive_dir: str) -> None:
        """``folder`` is where shards are written (maybe a staging folder); index entries
        name them ``<archive_dir>/<prefix>_NNNNNN.tar``, their path once in place."""
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix, self.shard_size = prefix, shard_size
        self.archive_dir = archive_dir
        self.shards: list[Path] = []
        self._fh = None
        self._tmp: Path | None = None
        self._count = 0

    def _open(self) -> None:
        final = self.folder / shard_name(self.prefix, len(self.shards))
        self.shards.append(final)
        self._tmp = staging_name(final)
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in _close
        self._count = 0

    def _close(self) -> None:
        if self._fh is None:
            return
        self._fh.write(archive_end())
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.shards[-1])  # type: ignore[arg-type]
        self._fh = None

    def add(self, checksum: str, files: dict[str, bytes]) -> IndexEntry:
        """Append the structure's files (``{format: text}``, PDB first); returns its index entry."""
        block = b"".join(gzip_entry(member_name(checksum, fmt), data) for fmt, data in files.items())
        return self.add_block(checksum, block, check_block(block, checksum, list(files)))

    def add_block(self, checksum: str, block: bytes, members: list[Member]) -> IndexEntry:
        """Append a structure's tar entries, checked by :func:`check_block` (``members``),
        copying their bytes; returns its index entry."""
        if self._fh is None or self._count >= self.shard_size:
            self._close()
            self._open()
        offset = self._fh.tell()  # type: ignore[union-attr]
        self._fh.write(block)  # type: ignore[union-attr]
        self._count += 1
        return block_entry(checksum, f"{self.archive_dir}/{self.shards[-1].name}", offset, members)

    def close(self) -> list[Path]:
        """Finish the last shard; return every shard written."""
        self._close()
        return self.shards

    def abort(self) -> None:
        """Remove the unfinished shard (on error)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()


def read_member(archive: str | os.PathLike[str], offset: int, length: int, *, expect: str | None = None) -> bytes:
    """One structure file by its index entry (``data_offset``, ``data_length``): one seek
    and one read (of the member's tar header and data), then a gunzip.

    Raises
    ------
    ValueError
        The bytes there are not the member's header and a gzip file whose CRC holds (a
        stale index), or the member is not ``expect``.
    """
    where = f"{archive}: offset {offset} (stale index?)"
    if offset < BLOCK:
        raise ValueError(f"{where}: expected a data offset after a tar header (>= {BLOCK}), found {offset}")
    with open(archive, "rb") as fh:
        fh.seek(offset - BLOCK)
        raw = fh.read(BLOCK + length)
    info = _header(raw[:BLOCK], where)
    if expect is not None and info.name != expect:
        raise ValueError(f"{archive}: expected member {expect!r} at offset {offset}, found {info.name!r}")
    if info.size != length:
        raise ValueError(f"{where}: expected {length} bytes of data, the header says {info.size}")
    return _gunzip(raw[BLOCK:], where)


def copy_members(entries: Iterator[tuple[str, str, int, int]], root: str | os.PathLike[str], dest: str | os.PathLike[str]) -> int:
    """Write a tar of indexed members, ``(archive, member, data_offset, data_length)``
    (``archive`` relative to ``root``), each tar entry copied byte for byte from its
    archive after checking that its header names the member and its length; returns the
    members written. ``dest`` is written atomically.

    Raises
    ------
    ValueError
        An entry's header is not the member's, or its archive ends early (a stale index).
    """
    n, current, fh = 0, None, None
    try:
        with atomic_path(dest) as tmp, open(tmp, "wb") as out:
            for archive, member, offset, length in entries:
                if archive != current:  # an archive's entries come one after another
                    if fh is not None:
                        fh.close()
                    current, fh = archive, open(Path(root) / archive, "rb")  # noqa: SIM115 - closed below
                entry = BLOCK + length + (-length % BLOCK)  # header, data, padding: read once
                fh.seek(offset - BLOCK)
                block = fh.read(entry)
                info = _header(block, f"{archive}: offset {offset - BLOCK} (stale index?)")
                if (info.name, info.size) != (member, length):
                    raise ValueError(f"{archive}: expected member {member!r} of {length} bytes at offset {offset}, found {info.name!r} of {info.size}")
                if len(block) != entry:
                    raise ValueError(f"{archive}: expected {entry} bytes of {member!r} at offset {offset - BLOCK}, found {len(block)} (truncated)")
                out.write(block)
                n += 1
            out.write(archive_end())
    finally:
        if fh is not None:
            fh.close()
    return n


def extract_structure(archive: str | os.PathLike[str], entry: IndexEntry, dest: str | os.PathLike[str]) -> Path:
    """Write one structure to ``<dest>/<checksum>.pdb``; the name is checked, never taken from the archive."""
    out = Path(dest) / f"{safe_member_name(entry.checksum)}.pdb"
    data = read_member(archive, entry.data_offset, entry.data_length, expect=entry.member)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return out


def iter_tar_members(path: str | os.PathLike[str], *, stream: bool = False) -> Iterator[tuple[str, bytes]]:
    """Stream ``(name, data)`` of the regular files of a tar; ``.gz`` members are
    decompressed (name without ``.gz``). ``stream`` reads it as a stream (``r|*``)."""
    with tarfile.open(path, mode="r|*" if stream else "r:*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            fh = tar.extractfile(info)
            assert fh is not None
            data = fh.read()
            if info.name.endswith(".gz"):
                yield info.name.removesuffix(".gz"), gzip.decompress(data)
            else:
                yield info.name, data


def read_structure_archive(path: str | os.PathLike[str]) -> dict[str, str]:
    """All members of a structure archive as ``{name without .gz: text}`` (for tests and small chunks)."""
    return {name: data.decode("ascii") for name, data in iter_tar_members(path)}


#: Foldcomp's documented reconstruction error is 0.08 A on average (Kim, Mirdita and
#: Steinegger, Bioinformatics 2023); a structure whose all-atom round trip is worse than
#: ``atlas.foldcomp_max_rmsd`` is left out of the Foldcomp database.
FOLDCOMP_DOCUMENTED_RMSD = 0.08


def _atom_table(pdb: str) -> tuple[list[tuple[int, str, str]], np.ndarray]:
    """(residue number, residue name, atom name) and coordinates of every ATOM record."""
    keys, xyz = [], []
    for line in pdb.splitlines():
        if line.startswith("ATOM"):
            keys.append((int(line[22:26]), line[17:20], line[12:16].strip()))
            xyz.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
    return keys, np.asarray(xyz, dtype=np.float64).reshape(-1, 3)


def foldcomp_compress(checksum: str, pdb: bytes) -> bytes | None:
    """A Foldcomp blob of a structure, without the round trip; None when Foldcomp cannot take it."""
    import foldcomp

    try:
        return foldcomp.compress(safe_member_name(checksum), pdb.decode("ascii"))
    except Exception:  # noqa: BLE001 - foldcomp raises plain errors on input it cannot take
        return None


def foldcomp_round_trip(checksum: str, pdb: bytes) -> tuple[bytes | None, float | None, str]:
    """Compress a structure with Foldcomp, decompress it and compare: ``(blob, rmsd, reason)``.

    The round trip must give back the same residues (numbers and names) and every atom,
    except the O of unknown (``UNK``) residues, which Foldcomp does not store (it keeps
    N, CA and C of residue types it does not know). The RMSD is over the atoms both
    have, without superposition (Foldcomp keeps the frame). ``blob`` is None, with the
    reason, when compression fails or residues or atoms differ.
    """
    import foldcomp

    text = pdb.decode("ascii")
    try:
        blob = foldcomp.compress(safe_member_name(checksum), text)
        _, back = foldcomp.decompress(blob)
    except Exception as exc:  # noqa: BLE001 - foldcomp raises plain errors on input it cannot take
        return None, None, f"Foldcomp failed: {type(exc).__name__}: {exc}"
    keys_a, xyz_a = _atom_table(text)
    keys_b, xyz_b = _atom_table(back)
    res_a = sorted({k[:2] for k in keys_a})
    res_b = sorted({k[:2] for k in keys_b})
    if res_a != res_b:
        first = next((a for a, b in zip(res_a, res_b) if a != b), None)
        return None, None, f"the round trip changes the residues ({len(res_a)} -> {len(res_b)}; first difference at {first}): a chain gap?"
    order_b = {k: i for i, k in enumerate(keys_b)}
    lost = [k for k in keys_a if k not in order_b and not (k[1] == "UNK" and k[2] == "O")]
    if lost or len(keys_b) > len(keys_a):
        return None, None, f"the round trip changes the atoms ({len(keys_a)} -> {len(keys_b)}; e.g. {lost[:1] or 'extra atoms'})"
    shared = [k for k in keys_a if k in order_b]
    d = xyz_a[[i for i, k in enumerate(keys_a) if k in order_b]] - xyz_b[[order_b[k] for k in shared]]
    rmsd = float(np.sqrt((d * d).sum(axis=1).mean())) if len(d) else 0.0
    return blob, rmsd, ""


class FoldcompWriter:
    """A Foldcomp database (``foldcomp.open`` reads it): MMseqs2-style data, ``.index``,
    ``.lookup`` and ``.dbtype`` files; entries are ``foldcomp.compress`` blobs named by checksum."""

    DBTYPE = 12  # Foldcomp's database type in the MMseqs2 layout

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = staging_name(self.path)
        self._data = open(self._tmp, "wb")  # noqa: SIM115
        self._index: list[tuple[int, int, int]] = []
        self._names: list[str] = []

    def add(self, checksum: str, blob: bytes) -> None:
        """Append one ``foldcomp.compress`` blob (see :func:`foldcomp_round_trip`)."""
        key = len(self._names)
        offset = self._data.tell()
        self._data.write(blob + b"\0")
        self._index.append((key, offset, len(blob) + 1))
        self._names.append(safe_member_name(checksum))

    def close(self) -> Path:
        self._data.close()
        for suffix, text in (
            (".index", "".join(f"{k}\t{o}\t{n}\n" for k, o, n in self._index)),
            (".lookup", "".join(f"{k}\t{name}\t0\n" for k, name in enumerate(self._names))),
        ):
            with atomic_path(self.path.with_name(self.path.name + suffix)) as tmp:
                tmp.write_text(text)
        with atomic_path(self.path.with_name(self.path.name + ".dbtype")) as tmp:
            tmp.write_bytes(struct.pack("<i", self.DBTYPE))
        os.replace(self._tmp, self.path)
        return self.path
