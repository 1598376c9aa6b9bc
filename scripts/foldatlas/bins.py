"""Atlas-style bundles: every structure of an atlas bucket repacked into shards per ESM
Atlas bin (``atlas.bins``).

The ESM Metagenomic Atlas distributes its structures as bundles per pTM x pLDDT bin
(``tm_.60_.70_plddt_.80_.90``, 0.1 steps; :data:`foldatlas.atlas.ATLAS_BINS`), with one
foldseek database per bin. :func:`repack_bins` does the same for one checksum bucket:
each structure the bucket's file of ``index.parquet`` lists (in the atlas's shards or,
without copies, in the store's fold archives) is copied, tar entries byte for byte after
:func:`~foldatlas.archive.check_block` (tar headers, gzip CRC), into
``bins/<bucket>/<bin>_NNNNNN.tar``, and listed in ``bins/index.parquet/<bucket>.parquet``
with the index's schema (``collection`` is the bin; a structure with a NaN pTM or pLDDT,
which has no bin, goes to ``unbinned``). A bin of the whole atlas is the
union of its buckets' shards: ``bins/*/<bin>_*.tar``. One job a bucket: no job grows with
the atlas.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from . import duck
from .archive import BLOCK, IndexEntry, Member, ShardWriter, check_block
from .atlas import NO_BIN, IndexWriter
from .atomic import atomic_dir, atomic_path
from .errors import StaleOutputError
from .layout import HIGHCONF
from .tables import INDEX_SCHEMA

__all__ = ["repack_bins"]

log = logging.getLogger(__name__)

_COLUMNS = ("checksum", "archive", "member", "data_offset", "data_length", "cif_member", "cif_offset", "cif_length", "high_confidence")


def _structures_sql(index: str | os.PathLike[str], predictions: str | os.PathLike[str]) -> str:
    """Each structure of the bucket once (a structure in both collections: its
    high-confidence row), with its bin (:data:`~foldatlas.atlas.NO_BIN` when a
    confidence is NaN), ordered by bin, then where it is read from."""
    cols = ", ".join(f"i.{c}" for c in _COLUMNS)
    return f"""
        WITH i AS (SELECT * FROM read_parquet({duck.sql_path(index)})
                   QUALIFY row_number() OVER (PARTITION BY checksum ORDER BY collection <> '{HIGHCONF}', collection) = 1),
             p AS (SELECT checksum, coalesce(min(bin), '{NO_BIN}') AS bin, count(DISTINCT bin) AS bins FROM read_parquet({duck.sql_path(predictions)})
                   GROUP BY checksum)
        SELECT {cols}, p.bin, p.bins, p.checksum IS NOT NULL AS predicted FROM i LEFT JOIN p USING (checksum)
        ORDER BY p.bin, i.archive, i.data_offset"""


def _block_range(row: dict) -> tuple[int, int]:
    """Start and length of a structure's tar entries (PDB, then ModelCIF when listed):
    from the PDB member's header to the end of the last member's padding."""
    end = (row["cif_offset"] + row["cif_length"]) if row["cif_member"] is not None else (row["data_offset"] + row["data_length"])
    start = row["data_offset"] - BLOCK
    return start, end - start + (-end % BLOCK)


class _Archives:
    """Open source archives (relative to the atlas folder), a few at a time."""

    def __init__(self, root: Path, keep: int = 16) -> None:
        self.root, self.keep = root, keep
        self._open: dict[str, object] = {}

    def read(self, archive: str, start: int, length: int) -> bytes:
        fh = self._open.pop(archive, None)
        if fh is None:
            if len(self._open) >= self.keep:
                self._open.pop(next(iter(self._open))).close()  # type: ignore[attr-defined]
            fh = open(self.root / archive, "rb")  # noqa: SIM115 - closed in close()
        self._open[archive] = fh  # most recently used last
        fh.seek(start)  # type: ignore[attr-defined]
        return fh.read(length)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()  # type: ignore[attr-defined]
        self._open.clear()


def _rows(con, sql: str) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    for batch in con.sql(sql).to_arrow_reader(1 << 14):
        yield from batch.to_pylist()


def repack_bins(
    *,
    bucket: str,
    index: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    atlas_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    index_out: str | os.PathLike[str],
    shard_size: int,
    scratch_dir: str | os.PathLike[str],
    memory_gb: float = 1.0,
) -> dict[str, int]:
    """Repack one bucket's structures into per-bin shards (module docstring).

    Parameters
    ----------
    index, predictions
        The bucket's file of ``index.parquet`` (archives relative to ``atlas_root``) and its
        predictions (``atlas_parts/<bucket>.predictions.parquet``: ``checksum``, ``bin``).
    out_dir
        ``bins/<bucket>/`` (written atomically: a reader sees the old folder or the new one);
        the index rows name shards ``bins/<bucket>/<bin>_NNNNNN.tar`` (relative to
        ``atlas_root``, where ``out_dir`` must be ``atlas_root/bins/<bucket>``).
    index_out
        ``bins/index.parquet/<bucket>.parquet`` (written atomically).
    scratch_dir, memory_gb
        DuckDB's spill folder goes in ``scratch_dir``; its sort of the bucket's index
        holds at most ``memory_gb`` and spills beyond.

    Returns
    -------
    dict
        Structures per bin (bins with none left out).

    Raises
    ------
    StaleOutputError
        A structure of the index has no bin, or two, in the predictions (they are of
        another run), or a source entry is not what the index says.
    """
    root = Path(atlas_root)
    shards = _BinShards(shard_size, Path(out_dir).resolve().relative_to(root.resolve()).as_posix())
    con, archives = duck.connect(memory_gb=memory_gb, spill_dir=Path(scratch_dir) / "spill", threads=1), _Archives(root)
    with atomic_dir(out_dir) as tmp, atomic_path(index_out) as tmp_index:
        writer, shards.folder = IndexWriter(Path(tmp_index), INDEX_SCHEMA), Path(tmp)
        try:
            for row in _rows(con, _structures_sql(index, predictions)):
                _check_prediction(row, index, predictions, bucket)
                start, length = _block_range(row)
                block = archives.read(row["archive"], start, length)
                formats = ["pdb", "cif"] if row["cif_member"] is not None else ["pdb"]
                members = check_block(block, row["checksum"], formats, where=f"{row['archive']}: offset {start} (stale index?)")
                writer.add(shards.add(row["bin"], row["checksum"], block, members), row["high_confidence"], row["bin"], (None, None, None))
            shards.close()
        finally:
            archives.close()
            writer.close()
    log.info("bucket %s: %d structures in %d bins", bucket, sum(shards.counts.values()), len(shards.counts))
    return shards.counts


def _check_prediction(row: dict, index: str | os.PathLike[str], predictions: str | os.PathLike[str], bucket: str) -> None:
    if not row["predicted"] or row["bins"] > 1:
        found = f"{row['bins']} bins" if row["predicted"] else "no prediction"
        raise StaleOutputError(str(predictions), f"expected one prediction with one bin for structure {row['checksum']} of {index}, found {found}: rerun assemble_bucket for bucket {bucket}")


class _BinShards:
    """The shards of one bin after another (the rows come sorted by bin), counted."""

    def __init__(self, shard_size: int, archive_dir: str) -> None:
        self.shard_size, self.archive_dir = shard_size, archive_dir
        self.folder: Path | None = None
        self.counts: dict[str, int] = {}
        self._bin: str | None = None
        self._writer: ShardWriter | None = None

    def add(self, name: str, checksum: str, block: bytes, members: list[Member]) -> IndexEntry:
        if name != self._bin:
            self.close()
            self._bin, self._writer = name, ShardWriter(self.folder, name, self.shard_size, archive_dir=self.archive_dir)  # type: ignore[arg-type]
            self.counts[name] = 0
        self.counts[name] += 1
        return self._writer.add_block(checksum, block, members)  # type: ignore[union-attr]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
