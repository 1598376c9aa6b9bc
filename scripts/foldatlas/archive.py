"""Sharded, randomly accessible structure archives (``.tar.gz``) and Foldcomp databases.

Every tar entry (header, data, padding) is compressed as its own gzip member, the way
BGZF blocks are: the shard is an ordinary ``.tar.gz`` that ``tar``, Python and foldseek
read from start to end, and an index of (compressed offset, compressed length) per
member lets one structure be read with one seek and one small read, without scanning.
Members are named ``<checksum>.pdb``; reading never touches the file system beyond the
archive, and :func:`extract_structure` writes only ``<dest>/<checksum>.pdb``.

Fold jobs write their chunk archives in the same form (:func:`gzip_entry`, compressed
in the writer thread while the model runs) and record each entry's byte range, so the
atlas files structures into its shards by copying compressed bytes
(:meth:`ShardWriter.add_entry`), without decompressing and compressing them again.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path, staging_name
from .layout import shard_name
from .structures import safe_member_name

__all__ = [
    "IndexEntry",
    "gzip_entry",
    "archive_end",
    "entry_header",
    "entry_data",
    "ShardWriter",
    "FoldcompWriter",
    "read_member",
    "extract_structure",
    "iter_tar_members",
    "read_structure_archive",
]

_BLOCK = 512
#: Fixed mtime of members and gzip headers: identical inputs give identical bytes.
ARCHIVE_MTIME = 1_700_000_000


@dataclass(frozen=True)
class IndexEntry:
    """Where one structure lives: archive (relative to the atlas folder), member, and
    the byte range of its gzip member (``offset``, ``length``); ``size`` is the PDB size."""

    checksum: str
    archive: str
    member: str
    offset: int
    length: int
    size: int


def gzip_entry(member: str, data: bytes, *, compresslevel: int = 6) -> bytes:
    """One tar entry (USTAR header, ``data``, padding) compressed as its own gzip member."""
    info = tarfile.TarInfo(member)
    info.size, info.mtime, info.mode = len(data), ARCHIVE_MTIME, 0o644
    block = info.tobuf(format=tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % _BLOCK)
    return gzip.compress(block, compresslevel=compresslevel, mtime=ARCHIVE_MTIME)


def archive_end(*, compresslevel: int = 6) -> bytes:
    """The end-of-archive marker (two zero blocks) as a gzip member."""
    return gzip.compress(b"\0" * (2 * _BLOCK), compresslevel=compresslevel, mtime=ARCHIVE_MTIME)


def _header(block: bytes, where: str) -> tarfile.TarInfo:
    try:
        return tarfile.TarInfo.frombuf(block[:_BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise ValueError(f"{where}: expected a tar header, found none ({exc})") from None


def entry_header(comp: bytes, *, where: str = "entry") -> tuple[str, int]:
    """Member name and data size of one :func:`gzip_entry`, decompressing only its header block.

    Raises
    ------
    ValueError
        ``comp`` does not start with a gzip member holding a tar header.
    """
    try:
        head = zlib.decompressobj(wbits=31).decompress(comp, _BLOCK)
    except zlib.error as exc:
        raise ValueError(f"{where}: expected a gzip member, found other bytes ({exc})") from None
    info = _header(head, where)
    return info.name, info.size


def entry_data(comp: bytes, *, where: str = "entry") -> tuple[str, bytes]:
    """Member name and data of one :func:`gzip_entry` (CRC checked)."""
    try:
        block = gzip.decompress(comp)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{where}: expected a gzip member, found other bytes ({exc})") from None
    info = _header(block, where)
    return info.name, block[_BLOCK : _BLOCK + info.size]


class ShardWriter:
    """Writes structures into ``<folder>/<prefix>_NNNNNN.tar.gz`` shards of at most ``shard_size``."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str, shard_size: int, *, archive_dir: str, compresslevel: int = 6) -> None:
        """``folder`` is where shards are written (maybe a staging folder); index entries
        name them ``<archive_dir>/<prefix>_NNNNNN.tar.gz``, their path once in place."""
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix, self.shard_size, self.level = prefix, shard_size, compresslevel
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
        self._fh.write(archive_end(compresslevel=self.level))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.shards[-1])  # type: ignore[arg-type]
        self._fh = None

    def add(self, checksum: str, data: bytes) -> IndexEntry:
        """Append ``<checksum>.pdb`` holding ``data``; returns its index entry."""
        member = f"{safe_member_name(checksum)}.pdb"
        return self.add_entry(checksum, gzip_entry(member, data, compresslevel=self.level), len(data))

    def add_entry(self, checksum: str, comp: bytes, size: int) -> IndexEntry:
        """Append an entry already compressed by :func:`gzip_entry` (``size``: its data
        bytes), copying its bytes; returns its index entry."""
        member = f"{safe_member_name(checksum)}.pdb"
        if self._fh is None or self._count >= self.shard_size:
            self._close()
            self._open()
        offset = self._fh.tell()  # type: ignore[union-attr]
        self._fh.write(comp)  # type: ignore[union-attr]
        self._count += 1
        return IndexEntry(checksum, f"{self.archive_dir}/{self.shards[-1].name}", member, offset, len(comp), size)

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
    """Read one structure by its index entry: one seek, one read of ``length`` bytes.

    Raises
    ------
    ValueError
        The bytes there are not one tar entry (a stale index), or the member is not ``expect``.
    """
    with open(archive, "rb") as fh:
        fh.seek(offset)
        comp = fh.read(length)
    name, data = entry_data(comp, where=f"{archive}: offset {offset} (stale index?)")
    if expect is not None and name != expect:
        raise ValueError(f"{archive}: expected member {expect!r} at offset {offset}, found {name!r}")
    return data


def extract_structure(archive: str | os.PathLike[str], entry: IndexEntry, dest: str | os.PathLike[str]) -> Path:
    """Write one structure to ``<dest>/<checksum>.pdb``; the name is checked, never taken from the archive."""
    out = Path(dest) / f"{safe_member_name(entry.checksum)}.pdb"
    data = read_member(archive, entry.offset, entry.length, expect=entry.member)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return out


def iter_tar_members(path: str | os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """Stream ``(name, data)`` of the regular files of a tar(.gz); nothing is extracted."""
    with tarfile.open(path, mode="r:*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            fh = tar.extractfile(info)
            assert fh is not None
            yield info.name, fh.read()


def read_structure_archive(path: str | os.PathLike[str]) -> dict[str, str]:
    """All members of a structure archive as ``{member: PDB text}`` (for tests and small chunks)."""
    return {name: data.decode("ascii") for name, data in iter_tar_members(path)}


class FoldcompWriter:
    """A Foldcomp database (``foldcomp.open`` reads it): MMseqs2-style data, ``.index``,
    ``.lookup`` and ``.dbtype`` files; entries are ``foldcomp.compress`` blobs named by checksum."""

    DBTYPE = 12  # Foldcomp's database type in the MMseqs2 layout

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import foldcomp

        self._compress = foldcomp.compress
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = staging_name(self.path)
        self._data = open(self._tmp, "wb")  # noqa: SIM115
        self._index: list[tuple[int, int, int]] = []
        self._names: list[str] = []

    def add(self, checksum: str, pdb: bytes) -> None:
        blob = self._compress(safe_member_name(checksum), pdb.decode("ascii"))
        key = len(self._names)
        offset = self._data.tell()
        self._data.write(blob + b"\0")
        self._index.append((key, offset, len(blob) + 1))
        self._names.append(checksum)

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
