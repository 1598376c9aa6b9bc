"""Streaming FASTA reading and per-record validation.

Files are read in blocks (plain, gzip or Zstandard, recognised by their magic bytes,
not their names), so memory does not grow with the file. Each record is normalised
(upper case, all whitespace removed, one trailing ``*`` stripped) and given a status
(:mod:`foldatlas.status`): ``ok``, ``empty``, ``invalid_characters``, ``too_short`` or
``too_long``; deduplication later marks repeats of an ok record ``duplicate``.
"""

from __future__ import annotations

import glob
import re
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import InputFileError
from .status import Status

__all__ = [
    "STANDARD_RESIDUES",
    "NONSTANDARD_RESIDUES",
    "ALPHABET",
    "WHITESPACE",
    "RawRecord",
    "Verdict",
    "expand_inputs",
    "open_fasta",
    "iter_records",
    "iter_record_groups",
    "validate_sequence",
    "sequence_checksum",
    "decode_header",
]

#: The 20 standard amino acids.
STANDARD_RESIDUES = b"ACDEFGHIKLMNPQRSTVWY"
#: Accepted, counted, and folded as unknown (ESMFold maps them to X; X gets no atoms).
NONSTANDARD_RESIDUES = b"XBZUO"
#: Every accepted residue letter (upper case).
ALPHABET = STANDARD_RESIDUES + NONSTANDARD_RESIDUES
#: ASCII whitespace, removed from sequences.
WHITESPACE = b" \t\r\n\v\f"
_ID = re.compile(r"[ \t\r\n\v\f]*([^ \t\r\n\v\f]*)")
_BLOCK = 1 << 23  # 8 MiB of decompressed text per read

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def expand_inputs(patterns: list[str], *, base: str | os.PathLike[str] = ".") -> list[str]:
    """Expand ``input.fasta`` entries (paths or globs) into an ordered list of files.

    Globs are expanded in sorted order, entries keep the order of the configuration,
    and a file named twice is an error (its records would be counted twice).

    Raises
    ------
    InputFileError
        An entry matches nothing, names a missing file or a directory, or a file
        appears twice.
    """
    if not patterns:
        raise InputFileError("input.fasta", "no input files configured (expected a list of paths or globs)")
    files: list[str] = []
    seen: dict[str, str] = {}
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else os.path.join(str(base), pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(full))
            if not matches:
                raise InputFileError(pattern, "glob matches no file")
            names = [os.path.relpath(m, base) if not os.path.isabs(pattern) else m for m in matches]
        else:
            if not os.path.exists(full):
                raise InputFileError(pattern, "file does not exist")
            names = [pattern]
        for name in names:
            full_name = name if os.path.isabs(name) else os.path.join(str(base), name)
            if os.path.isdir(full_name):
                raise InputFileError(name, "is a directory, expected a FASTA file")
            key = os.path.realpath(full_name)
            if key in seen:
                raise InputFileError(name, f"listed twice in input.fasta (also as {seen[key]!r})")
            seen[key] = name
            files.append(name)
    return files


def open_fasta(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a plain, gzip or Zstandard file for binary reading (format from magic bytes).

    Raises
    ------
    InputFileError
        The file is missing or unreadable.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise InputFileError(str(path), f"cannot open: {exc.strerror}") from None
    magic = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if magic.startswith(_ZSTD_MAGIC):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=_BLOCK)  # type: ignore[arg-type]
    return raw


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One FASTA record as read, before validation.

    ``line`` is the 1-based line number of the header in the decompressed text;
    ``body`` holds the raw sequence lines (newlines included).
    """

    index: int
    line: int
    header: bytes
    body: bytes


def _read_blocks(fh: BinaryIO, path: str) -> Iterator[bytes]:
    offset = 0
    while True:
        try:
            block = fh.read(_BLOCK)
        except EOFError:
            raise InputFileError(
                path, f"compressed stream is truncated after {offset} bytes of text"
            ) from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise InputFileError(
                path, f"cannot decompress after {offset} bytes of text: {exc}"
            ) from None
        except Exception as exc:  # zstandard.ZstdError and friends
            raise InputFileError(
                path, f"cannot read after {offset} bytes of text: {exc}"
            ) from None
        if not block:
            return
        offset += len(block)
        yield block


def iter_record_groups(path: str | os.PathLike[str], *, display_name: str | None = None) -> Iterator[tuple[int, bytes]]:
    """Stream the file as groups of whole records: ``(line of the first header, text)``.

    ``text`` starts with the first record's ``>`` and ends just before the newline that
    precedes the next group's ``>`` (so records inside are separated by ``\n>``). Groups
    are about one read block (8 MiB) each. This is the fast path used by ingest;
    :func:`iter_records` gives one :class:`RawRecord` at a time.

    Raises
    ------
    InputFileError
        The file cannot be opened or decompressed, holds no record, or has text before
        its first ``>`` header (binary garbage included); the message names the file
        and the line.
    """
    name = display_name or str(path)
    line = 1
    buf = b""
    started = False
    with open_fasta(path) as fh:
        for block in _read_blocks(fh, name):
            data = buf + block if buf else block
            if not started:
                stripped = data.lstrip(WHITESPACE)
                if not stripped:
                    line += data.count(b"\n")
                    buf = b""
                    continue
                line += data[: len(data) - len(stripped)].count(b"\n")
                if not stripped.startswith(b">"):
                    raise InputFileError(
                        name,
                        f"expected a FASTA header starting with '>', found {_describe(stripped[:1])}"
                        " (not a FASTA file, or sequence before the first header)",
                        line=line,
                    )
                data = stripped
                started = True
            cut = data.rfind(b"\n>")
            if cut < 0:
                buf = data
                continue
            piece, buf = data[:cut], data[cut + 1 :]
            yield line, piece
            line += piece.count(b"\n") + 1
        if buf:
            yield line, buf
    if not started:
        raise InputFileError(name, "contains no FASTA record (empty file)")


def iter_records(path: str | os.PathLike[str], *, display_name: str | None = None) -> Iterator[RawRecord]:
    """Stream the records of one FASTA file, one :class:`RawRecord` at a time.

    Memory stays bounded by the block size plus the longest record. Blank lines before
    the first header are allowed; any other text before it is an error (see
    :func:`iter_record_groups` for the errors raised).
    """
    index = 0
    for line, piece in iter_record_groups(path, display_name=display_name):
        for part in piece[1:].split(b"\n>"):
            header, _, body = part.partition(b"\n")
            yield RawRecord(index, line, header, body)
            index += 1
            line += part.count(b"\n") + 1


def _describe(char: bytes) -> str:
    if not char:
        return "end of file"
    c = char[0]
    if 32 <= c < 127:
        return repr(chr(c))
    return f"byte 0x{c:02x}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of validating one sequence.

    ``sequence`` is the normalised sequence (ASCII upper case) and ``n_nonstandard`` the
    count of X, B, Z, U, O residues in it. ``reason`` is empty for ``ok``.
    """

    status: Status
    reason: str
    sequence: bytes
    n_nonstandard: int


_NONSTANDARD_DELETE = bytes(c for c in range(256) if c not in NONSTANDARD_RESIDUES)


def validate_sequence(body: bytes, *, min_length: int, max_length: int) -> Verdict:
    """Normalise a raw sequence body and decide its status (see the module docstring).

    The order of checks is: empty, invalid characters, too short, too long.
    """
    seq = body.translate(None, WHITESPACE).upper()
    if seq.endswith(b"*"):
        seq = seq[:-1]
    if not seq:
        return Verdict(Status.EMPTY, "no residues", seq, 0)
    bad = seq.translate(None, ALPHABET)
    if bad:
        chars = sorted(set(bad.decode("utf-8", errors="replace")))
        shown = ", ".join(_char_name(c) for c in chars[:10])
        more = f" and {len(chars) - 10} more" if len(chars) > 10 else ""
        return Verdict(Status.INVALID_CHARACTERS, f"invalid characters: {shown}{more}", seq, 0)
    n_nonstandard = len(seq.translate(None, _NONSTANDARD_DELETE))
    n = len(seq)
    if n < min_length:
        return Verdict(Status.TOO_SHORT, too_short_reason(n, min_length), seq, n_nonstandard)
    if n > max_length:
        return Verdict(Status.TOO_LONG, too_long_reason(n, max_length), seq, n_nonstandard)
    return Verdict(Status.OK, "", seq, n_nonstandard)


def too_short_reason(length: int, min_length: int) -> str:
    """The ``reason`` of a ``too_short`` record."""
    return f"length {length} < ingest.min_length {min_length}"


def too_long_reason(length: int, max_length: int) -> str:
    """The ``reason`` of a ``too_long`` record."""
    return f"length {length} > ingest.max_length {max_length}"


def _char_name(c: str) -> str:
    if c == "\ufffd":
        return "non-UTF-8 bytes"
    if c.isprintable() and c != "'":
        return f"'{c}'"
    return f"U+{ord(c):04X}"


def sequence_checksum(sequence: bytes) -> str:
    """The key of a unique sequence: MD5 of the normalised sequence, 32 lower-case hex digits.

    MD5 is the sequence checksum of UniParc, InterPro and MGnify. The ESM Atlas's
    CRC64 is 64 bits wide, which collides with probability about 3% among 10^9 distinct
    sequences, so it cannot be a deduplication key at that scale.
    """
    return hashlib.md5(sequence, usedforsecurity=False).hexdigest()


def decode_header(header: bytes) -> tuple[str, str]:
    """Return ``(id, header)``: the first token delimited by ASCII whitespace, and the whole line.

    Bytes that are not UTF-8 become U+FFFD; a trailing carriage return is dropped.
    """
    text = header.rstrip(b"\r").decode("utf-8", errors="replace")
    token = _ID.match(text)
    return (token.group(1) if token else ""), text

