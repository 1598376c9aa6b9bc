"""foldseek (MMseqs2-format) databases as files: their entries, their size, and a new
database made of chosen entries of several others.

A foldseek database ``<prefix>`` is four MMseqs2 databases sharing one key space: the
amino acids (``<prefix>``), the 3Di states (``_ss``), the C-alpha coordinates (``_ca``) and
the headers (``_h``). Each is a data file of entries (every entry ends in a NUL byte), an
``.index`` (``key<TAB>offset<TAB>length``, sorted by key) and a ``.dbtype``; the amino acid
database also has a ``.lookup`` (``key<TAB>name<TAB>file number``) and a ``.source``
(``file number<TAB>file name``). An amino acid entry is the sequence, a newline and the
NUL byte, so ``length - 2`` is the chain's residue count.

:func:`select_entries` copies entries byte for byte (foldseek's own ``createsubdb`` keeps
the source's key space and links the header database and the lookup to the source, so
subsets of several shard databases cannot simply be put together).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_dir

__all__ = ["COMPONENTS", "DbSize", "db_size", "read_lookup", "select_entries", "db_prefixes"]

#: The databases that make up a foldseek database: amino acids, 3Di, C-alpha, headers.
COMPONENTS = ("", "_ss", "_ca", "_h")


@dataclass(frozen=True)
class DbSize:
    """Entries (chains) and residues of foldseek databases."""

    entries: int
    residues: int

    def __add__(self, other: DbSize) -> DbSize:
        return DbSize(self.entries + other.entries, self.residues + other.residues)


def db_size(prefix: str | os.PathLike[str]) -> DbSize:
    """Chains and residues of one database, from its amino acid index and data file size
    (no entry is read): every entry is its residues plus a newline and a NUL byte."""
    with open(f"{prefix}.index", "rb") as fh:
        entries = sum(1 for _ in fh)
    return DbSize(entries, max(0, Path(prefix).stat().st_size - 2 * entries))


def db_prefixes(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Every database named ``name`` under ``folder`` (one per shard), in path order."""
    return sorted(p.with_suffix("") for p in Path(folder).rglob(f"{name}.dbtype"))


def read_lookup(prefix: str | os.PathLike[str]) -> dict[str, int]:
    """Entry name -> key of a database's ``.lookup``."""
    out = {}
    with open(f"{prefix}.lookup") as fh:
        for line in fh:
            key, name, *_ = line.rstrip("\n").split("\t")
            out[name] = int(key)
    return out


def _index(path: str) -> dict[int, tuple[int, int]]:
    out = {}
    with open(path) as fh:
        for line in fh:
            key, offset, length = line.split("\t")
            out[int(key)] = (int(offset), int(length))
    return out


def select_entries(parts: Iterable[tuple[str | os.PathLike[str], Sequence[int]]], out: str | os.PathLike[str]) -> int:
    """A new database ``out`` (a prefix; written atomically with its folder) of the given
    keys of each source database, renumbered 0, 1, ... in the order given; returns the
    number of entries. Every component (amino acids, 3Di, C-alpha, headers) is copied
    byte for byte, so foldseek reads the result as it reads a ``createdb`` output."""
    out = Path(out)
    with atomic_dir(out.parent) as tmp:
        dst = Path(tmp) / out.name
        files = {c: open(f"{dst}{c}", "wb") for c in COMPONENTS}
        indices = {c: open(f"{dst}{c}.index", "w") for c in COMPONENTS}
        lookup, source = open(f"{dst}.lookup", "w"), open(f"{dst}.source", "w")
        new = 0
        try:
            for prefix, keys in parts:
                names = {k: n for n, k in read_lookup(prefix).items()}
                for c in COMPONENTS:
                    idx = _index(f"{prefix}{c}.index")
                    offset = files[c].tell()
                    with open(f"{prefix}{c}", "rb") as src:
                        for j, key in enumerate(keys):
                            start, length = idx[key]
                            src.seek(start)
                            data = src.read(length)
                            if len(data) != length:
                                raise ValueError(f"{prefix}{c}: expected {length} bytes of entry {key} at {start}, found {len(data)}")
                            files[c].write(data)
                            indices[c].write(f"{new + j}\t{offset}\t{length}\n")
                            offset += length
                for j, key in enumerate(keys):
                    lookup.write(f"{new + j}\t{names[key]}\t{new + j}\n")
                    source.write(f"{new + j}\t{names[key]}\n")
                new += len(keys)
                for c in COMPONENTS:
                    shutil.copyfile(f"{prefix}{c}.dbtype", f"{dst}{c}.dbtype")
        finally:
            for fh in (*files.values(), *indices.values(), lookup, source):
                fh.close()
        if new == 0:
            raise ValueError(f"{out}: expected at least one entry to select, found none")
    return new
