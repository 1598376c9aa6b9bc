"""Checksum buckets: the first hex digits of a sequence's MD5, which split the work of a
release (publishing) and of an atlas (assembly) into jobs of bounded size.

A bucket is named by its hex prefix (``"0a"``), or :data:`WHOLE` when the work is not
split. Its sequences are a range of checksums, from the prefix up to (not including) the
prefix followed by ``"g"`` (after every hex digit): a range, so Parquet's row-group
statistics skip the rest of a table sorted by checksum.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["WHOLE", "MAX_DIGITS", "SEQUENCES_PER_ATLAS_BUCKET", "bucket_names", "bucket_of", "bucket_bounds", "bucket_where", "atlas_bucket_digits", "has_members"]

#: The bucket of work not split into checksum buckets (0 digits).
WHOLE = "all"
#: The most hex digits a bucket has (256 buckets).
MAX_DIGITS = 2
#: ``atlas.bucket_digits: auto`` gives each assembly job at most about this many unique
#: sequences, up to 256 buckets (about 40 min of one assembly job each on the measured
#: rate with full-atom PDBs; README "Scale").
SEQUENCES_PER_ATLAS_BUCKET = 3_000_000


def bucket_names(digits: int) -> list[str]:
    """Every bucket of ``digits`` hex digits in order, or ``[WHOLE]`` for 0 digits.

    Raises
    ------
    ValueError
        ``digits`` is not 0, 1 or 2.
    """
    if digits not in range(MAX_DIGITS + 1):
        raise ValueError(f"expected 0 to {MAX_DIGITS} bucket digits, found {digits!r}")
    return [f"{i:0{digits}x}" for i in range(16**digits)] if digits else [WHOLE]


def bucket_of(checksum: str, digits: int) -> str:
    """The bucket of one checksum (hex MD5) among buckets of ``digits`` digits."""
    return checksum[:digits] if digits else WHOLE


def bucket_bounds(bucket: str) -> tuple[str, str]:
    """``(lo, hi)``: the bucket's checksums are ``lo <= checksum < hi``.

    Raises
    ------
    ValueError
        ``bucket`` is neither :data:`WHOLE` nor 1 or 2 lower-case hex digits.
    """
    if bucket == WHOLE:
        return "", "g"
    if re.fullmatch(f"[0-9a-f]{{1,{MAX_DIGITS}}}", bucket) is None:
        raise ValueError(f"expected a checksum bucket ({WHOLE!r} or 1-{MAX_DIGITS} lower-case hex digits), found {bucket!r}")
    return bucket, bucket + "g"


def bucket_where(column: str, bucket: str, *, nulls: bool = False) -> str:
    """A SQL condition: ``column`` (a checksum) is in ``bucket`` (``TRUE`` for :data:`WHOLE`).

    With ``nulls``, a row without a checksum (a record rejected before one was computed:
    empty, invalid characters) belongs to the first bucket (``0``, ``00``), so that every
    row is in exactly one bucket."""
    if bucket == WHOLE:
        return "TRUE"
    lo, hi = bucket_bounds(bucket)  # validated hex: safe to inline
    where = f"({column} >= '{lo}' AND {column} < '{hi}')"
    if nulls and set(bucket) == {"0"}:
        where = f"({where} OR {column} IS NULL)"
    return where


def atlas_bucket_digits(setting: int | str, sequences: int) -> int:
    """Hex digits of the atlas's buckets (``atlas.bucket_digits``): the setting, or for
    ``"auto"`` the fewest that leave each bucket at most
    :data:`SEQUENCES_PER_ATLAS_BUCKET` of the run's ``sequences`` (unique), up to
    :data:`MAX_DIGITS`: 0 (one job) below 3x10^6, 1 (16) below 4.8x10^7, else 2 (256)."""
    if setting != "auto":
        bucket_names(int(setting))  # validates
        return int(setting)
    for digits in range(MAX_DIGITS):
        if sequences <= SEQUENCES_PER_ATLAS_BUCKET * 16**digits:
            return digits
    return MAX_DIGITS


def has_members(metadata: Any) -> bool:
    """Whether a ``sequences.parquet`` may hold members (a ``representative``), from its
    footer (``pyarrow.parquet.FileMetaData``) alone: True unless every row group's
    statistics say the column is all null (True when a row group has no statistics)."""
    names = metadata.schema.names
    if "representative" not in names:
        return False
    col = names.index("representative")
    for g in range(metadata.num_row_groups):
        c = metadata.row_group(g).column(col)
        if not c.is_stats_set or c.statistics.null_count != metadata.row_group(g).num_rows:
            return True
    return False
