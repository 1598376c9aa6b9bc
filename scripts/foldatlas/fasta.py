"""Streaming FASTA reading and per-record validation.

Input files are plain, gzip (multi-member and bgzip included) or Zstandard (multi-frame,
and the skippable frames ``pzstd`` writes), recognised by their magic bytes, not their
names, and read in blocks so memory does not grow with the file. Every compressed
stream is read to a verified end: each gzip member to its CRC-32 and length, each
Zstandard frame to its end (and its content checksum when it has one), a bgzip file to
its end-of-file block. A file cut short or corrupt is an :class:`InputFileError` naming
the file and the byte offset, never a silently shorter input.

Line breaks are LF or CRLF; a file whose first line break is a lone CR (classic Mac OS)
is read with CR line breaks. A line whose first character other than space, tab, VT or
FF is ``>`` is a header, indented or not. In a file with LF line breaks, a lone CR
directly before a header (mixed line endings, which would merge two records) is an
error.

Each record is normalised (upper case, all whitespace removed, one trailing ``*``
stripped) and given a status (:mod:`foldatlas.status`): ``ok``, ``empty``,
``invalid_characters``, ``too_short`` or ``too_long``; deduplication later marks repeats
of an ok record ``duplicate``.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import InputFileError
from .status import Status

__all__ = [
    "STANDARD_RESIDUES",
    "NONSTANDARD_RESIDUES",
    "ALPHABET",
    "WHITESPACE",
    "RawRecord",
    "TextStream",
    "Verdict",
    "expand_inputs",
    "printable_path",
    "text_blocks",
    "iter_records",
    "iter_record_groups",
    "validate_sequence",
    "sequence_checksum",
    "decode_header",
]

log = logging.getLogger("foldatlas.fasta")

#: The 20 standard amino acids.
STANDARD_RESIDUES = b"ACDEFGHIKLMNPQRSTVWY"
#: Accepted, counted, and folded as unknown (ESMFold maps them to X; X gets no atoms).
NONSTANDARD_RESIDUES = b"XBZUO"
#: Every accepted residue letter (upper case).
ALPHABET = STANDARD_RESIDUES + NONSTANDARD_RESIDUES
#: ASCII whitespace, removed from sequences.
WHITESPACE = b" \t\r\n\v\f"
#: Whitespace that may indent a header line (everything but line breaks).
BLANKS = b" \t\v\f"
_ID = re.compile(r"[ \t\r\n\v\f]*([^ \t\r\n\v\f]*)")
_BLOCK = 1 << 23  # 8 MiB of decompressed text per block
_RAW_READ = 1 << 20  # compressed bytes per read
_ZSTD_FEED = 1 << 16  # compressed bytes per Zstandard call (the fastest size, measured)
_MODE_PROBE = 1 << 16  # text bytes that decide whether a file is CR-only

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE = range(0x184D2A50, 0x184D2A60)  # Zstandard skippable frames (pzstd writes them)
_UNSUPPORTED = {
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x04\x22\x4d\x18": "LZ4",
    b"PK\x03\x04": "zip",
    b"\x1f\x9d": "Unix compress (.Z)",
    b"LZIP": "lzip",
}


# -- the input list ------------------------------------------------------------------


def printable_path(name: str) -> str:
    """``name`` as text that can always be printed: bytes of a file name that are not
    UTF-8 (Python keeps them as surrogates) are shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def expand_inputs(patterns: list[str], *, base: str | os.PathLike[str] = ".") -> list[str]:
    """Expand ``input.fasta`` entries (paths or globs) into an ordered list of files.

    An entry that names an existing path is taken literally, even if it holds ``[``,
    ``?`` or ``*``; only an entry that names no existing path is expanded as a glob (in
    sorted order), and a glob that matches nothing is an error. Entries keep the order
    of the configuration. Every file must be a regular file (or a symbolic link to one)
    with a UTF-8 name, and no file may be listed twice, by name, glob, hard link or
    symbolic link (same device and inode): its records would be counted twice.

    Raises
    ------
    InputFileError
        An entry matches nothing, names a missing file, a directory, a FIFO or another
        file that is not regular, a name that is not UTF-8, or a file that appears twice.
    """
    if not patterns:
        raise InputFileError("input.fasta", "no input files configured (expected a list of paths or globs)")
    files: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    for pattern in patterns:
        for name in _entry_files(pattern, base):
            key = _regular_file(name, _full(name, base))
            if key in seen:
                also = "the same name" if seen[key] == name else f"{printable_path(seen[key])!r}: the same file (device and inode)"
                raise InputFileError(printable_path(name), f"listed twice in input.fasta (also as {also}); expected each file once")
            seen[key] = name
            files.append(name)
    return files


def _full(name: str, base: str | os.PathLike[str]) -> str:
    return name if os.path.isabs(name) else os.path.join(str(base), name)


def _entry_files(pattern: str, base: str | os.PathLike[str]) -> list[str]:
    """The files of one input.fasta entry: itself if that path exists, else its glob matches."""
    full = _full(pattern, base)
    if os.path.exists(full):
        return [pattern]
    if os.path.lexists(full):
        raise InputFileError(printable_path(pattern), "is a symbolic link to a missing file; expected a FASTA file")
    if not glob.has_magic(pattern):
        raise InputFileError(printable_path(pattern), "file does not exist")
    matches = sorted(glob.glob(full))
    if not matches:
        raise InputFileError(printable_path(pattern), "glob matches no file (and no file has this exact name)")
    return [m if os.path.isabs(pattern) else os.path.relpath(m, base) for m in matches]


def _regular_file(name: str, full: str) -> tuple[int, int]:
    """(device, inode) of a listed file, after checking it is a regular file with a UTF-8 name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputFileError(
            printable_path(name), "file name is not valid UTF-8 (expected a UTF-8 name, as Snakemake needs: rename the file)"
        ) from None
    try:
        st = os.stat(full)
    except OSError as exc:
        raise InputFileError(name, f"cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(name, f"is {_file_kind(st.st_mode)}, expected a regular FASTA file")
    return st.st_dev, st.st_ino


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


# -- verified decoding -----------------------------------------------------------------


@dataclass
class TextStream:
    """What was read of one input file; :func:`text_blocks` fills it in as it streams.

    ``format`` is plain, gzip, bgzip or zstd; ``file_bytes`` the bytes of the file read
    (all of them once the stream has ended); ``text_bytes`` the decompressed bytes.
    """

    format: str = "plain"
    file_bytes: int = 0
    text_bytes: int = 0


class _Compressed:
    """A compressed file read in pieces, with the offset of the next byte (``pos``)."""

    def __init__(self, fh: BinaryIO, name: str, fmt: str) -> None:
        self.fh, self.name, self.fmt = fh, name, fmt
        self.buf = b""
        self.off = 0  # next unread byte of buf
        self.pos = 0  # file offset of buf[off]
        self.size = os.fstat(fh.fileno()).st_size
        self.text = 0  # bytes of text decoded so far (for messages)

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes without consuming them (fewer at the end of the file)."""
        if len(self.buf) - self.off < n:
            self.buf = self.buf[self.off :] + self.fh.read(max(_RAW_READ, n))
            self.off = 0
        return self.buf[self.off : self.off + n]

    def take(self, n: int) -> bytes:
        """Up to ``n`` next bytes (empty at the end of the file)."""
        if self.off >= len(self.buf):
            self.buf, self.off = self.fh.read(_RAW_READ), 0
        out = self.buf[self.off : self.off + n]
        self.off += len(out)
        self.pos += len(out)
        return out

    def unread(self, n: int) -> None:
        """Give back the last ``n`` bytes taken (a decoder's unused input)."""
        self.off -= n
        self.pos -= n

    def skip(self, n: int, start: int) -> None:
        while n:
            got = len(self.take(n))
            if not got:
                raise self.truncated("skippable frame", start)
            n -= got

    def truncated(self, unit: str, start: int) -> InputFileError:
        return InputFileError(
            self.name,
            f"compressed stream is truncated: expected the end of the {self.fmt} {unit} that starts at byte {start}, "
            f"found the end of the file at byte {self.size} (after {self.text} bytes of text)",
        )

    def corrupt(self, unit: str, start: int, exc: Exception) -> InputFileError:
        return InputFileError(
            self.name,
            f"compressed data is corrupt: the {self.fmt} {unit} that starts at byte {start} fails to decode "
            f"before byte {self.pos} (after {self.text} bytes of text): {exc}",
        )


def text_blocks(path: str | os.PathLike[str], *, display_name: str | None = None, stream: TextStream | None = None) -> Iterator[bytes]:
    """The decompressed text of one file, in blocks of about 8 MiB, read to a verified end.

    ``stream`` (if given) is filled in as the blocks go by.

    Raises
    ------
    InputFileError
        The file cannot be opened, is not a regular file, is compressed with an
        unsupported program, or its compressed stream is truncated, corrupt or followed by
        other data; the message names the file and the byte offset.
    """
    name = display_name or printable_path(str(path))
    stream = stream if stream is not None else TextStream()
    with _open_regular(path, name) as fh:
        head = fh.peek(8)[:8]
        stream.format = _format(head, name)
        if stream.format == "plain":
            blocks = _plain_blocks(fh)
        else:
            src = _Compressed(fh, name, stream.format)
            blocks = _rebuffered(_gzip_pieces(src, stream) if stream.format == "gzip" else _zstd_pieces(src))
        for block in blocks:
            stream.text_bytes += len(block)
            yield block
        stream.file_bytes = fh.tell() if stream.format == "plain" else src.pos
        if stream.file_bytes != os.fstat(fh.fileno()).st_size:
            raise InputFileError(name, f"the file changed while it was read (expected {os.fstat(fh.fileno()).st_size} bytes, read {stream.file_bytes})")


def _open_regular(path: str | os.PathLike[str], name: str):  # type: ignore[no-untyped-def]
    """Open a regular file for reading; anything else (a FIFO would block forever) is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputFileError(name, f"cannot open: {exc.strerror or errno.errorcode.get(exc.errno, exc)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputFileError(name, f"is {_file_kind(mode)}, expected a regular FASTA file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=_RAW_READ)


def _format(head: bytes, name: str) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC) or (len(head) >= 4 and int.from_bytes(head[:4], "little") in _SKIPPABLE):
        return "zstd"
    for magic, program in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise InputFileError(name, f"is {program}-compressed; expected plain, gzip or Zstandard FASTA (recompress it with gzip or zstd)")
    return "plain"


def _plain_blocks(fh: BinaryIO) -> Iterator[bytes]:
    while block := fh.read(_BLOCK):
        yield block


def _rebuffered(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Decoder output joined into blocks of at least ``_BLOCK`` bytes (the last may be shorter)."""
    held: list[bytes] = []
    size = 0
    for piece in pieces:
        if piece:
            held.append(piece)
            size += len(piece)
            if size >= _BLOCK:
                yield b"".join(held)
                held, size = [], 0
    if held:
        yield b"".join(held)


def _gzip_pieces(src: _Compressed, stream: TextStream) -> Iterator[bytes]:
    """Every gzip member to its end (zlib checks each one's CRC-32 and length); zero
    padding after the last member is allowed (as gzip does), anything else is an error.
    A bgzip file must end with its empty end-of-file block."""
    bgzf = _is_bgzf(src.peek(18))
    if bgzf:
        stream.format = src.fmt = "bgzip"
    last_text = -1
    while head := src.peek(2):
        if head[:1] == b"\0" and _only_zeros(src):
            break
        if head != _GZIP_MAGIC:
            raise InputFileError(src.name, f"expected another gzip member or the end of the file at byte {src.pos}, found {_describe_bytes(src.peek(4))}")
        before = src.text
        yield from _gzip_member(src)
        last_text = src.text - before
    if bgzf and last_text != 0:
        raise InputFileError(
            src.name,
            f"compressed stream is truncated: expected the bgzip end-of-file block, found the end of the file at byte {src.size} "
            f"(after {src.text} bytes of text; the file was cut between two blocks)",
        )


def _gzip_member(src: _Compressed) -> Iterator[bytes]:
    start = src.pos
    d = zlib.decompressobj(31)
    while not d.eof:
        data = src.take(_RAW_READ)
        if not data:
            raise src.truncated("member", start)
        while True:
            try:
                out = d.decompress(data, _BLOCK)
            except zlib.error as exc:
                raise src.corrupt("member", start, exc) from None
            src.text += len(out)
            yield out
            if d.eof:
                src.unread(len(d.unused_data))
                break
            if not d.unconsumed_tail:
                break
            data = d.unconsumed_tail


def _is_bgzf(head: bytes) -> bool:
    """A BGZF (bgzip) member: FEXTRA set and a 'BC' subfield first."""
    return len(head) >= 16 and head[:2] == _GZIP_MAGIC and bool(head[3] & 4) and head[12:14] == b"BC"


def _only_zeros(src: _Compressed) -> bool:
    """Consume zero padding; True if it runs to the end of the file."""
    while data := src.peek(_RAW_READ):
        zeros = len(data) - len(data.lstrip(b"\0"))
        src.take(zeros)
        if zeros < len(data):
            return False
    return True


def _zstd_pieces(src: _Compressed) -> Iterator[bytes]:
    """Every Zstandard frame to its end (libzstd checks the content checksum when the frame
    has one); skippable frames are skipped; anything else between frames is an error."""
    import zstandard

    # windows up to 2 GiB: files written with zstd --long (libzstd refuses > 128 MiB by default)
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    while head := src.peek(8):
        start = src.pos
        magic = int.from_bytes(head[:4], "little") if len(head) >= 4 else -1
        if magic in _SKIPPABLE:
            if len(head) < 8:
                raise src.truncated("skippable frame", start)
            src.take(8)
            src.skip(int.from_bytes(head[4:8], "little"), start)
        elif head[:4] == _ZSTD_MAGIC:
            yield from _zstd_frame(src, dctx, zstandard.ZstdError)
        elif len(head) < 4 and _ZSTD_MAGIC.startswith(head):
            raise src.truncated("frame", start)
        else:
            raise InputFileError(src.name, f"expected another Zstandard frame or the end of the file at byte {start}, found {_describe_bytes(head[:4])}")


def _zstd_frame(src: _Compressed, dctx, error: type[Exception]) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    start = src.pos
    d = dctx.decompressobj()
    while not d.eof:
        data = src.take(_ZSTD_FEED)
        if not data:
            raise src.truncated("frame", start)
        try:
            out = d.decompress(data)
        except error as exc:
            raise src.corrupt("frame", start, exc) from None
        src.text += len(out)
        yield out
        if d.eof:
            src.unread(len(d.unused_data))


def _describe_bytes(data: bytes) -> str:
    return "bytes " + " ".join(f"{b:02x}" for b in data) if data else "the end of the file"


# -- line breaks -------------------------------------------------------------------------

_INDENTED_HEADER = re.compile(rb"\n[ \t\v\f]+>")
_CR_BEFORE_HEADER = re.compile(rb"\r[ \t\v\f]*>")


def _line_mode(data: bytes, *, final: bool) -> bool | None:
    """True if the text is CR-only: a CR and no LF in its first ``_MODE_PROBE`` bytes (or in
    all of it, if shorter). None while undecided."""
    if b"\n" in data:
        return False
    if len(data) >= _MODE_PROBE or final:
        return b"\r" in data
    return None


def _hold_tail(data: bytes) -> tuple[bytes, bytes]:
    """Split off the last line break (CRLF whole) and the blanks after it: they may belong
    to an indented header or a CRLF that continues in the next block."""
    last = max(data.rfind(b"\n"), data.rfind(b"\r"))
    if last < 0 or data[last + 1 :].translate(None, BLANKS):
        return data, b""
    if last > 0 and data[last - 1 : last + 1] == b"\r\n":
        last -= 1
    return data[:last], data[last:]


_AFTER_BLANK_OR_CR = np.zeros(256, dtype=bool)
_AFTER_BLANK_OR_CR[list(BLANKS + b"\r")] = True


def _odd_headers(data: bytes) -> bool:
    """Whether some '>' follows a blank or a CR (an indented header, or a CR line break
    before a header): the rare case that needs a closer look. Vectorised: one pass finds
    every '>' (a few per record), then only their preceding bytes are looked at."""
    a = np.frombuffer(data, dtype=np.uint8)
    gt = np.flatnonzero(a == 0x3E)
    prev = a[gt[gt > 0] - 1]
    return bool(_AFTER_BLANK_OR_CR[prev].any())


class _LineBreaks:
    """Turns decoded text into LF-separated text whose header lines start with ``>``
    (see the module docstring); one instance per file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cr_only: bool | None = None
        self.offset = 0  # text offset of the next byte given to normalise
        self.warned: set[str] = set()

    def __call__(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        carry = b""
        for block in blocks:
            data = carry + block if carry else block
            if self.cr_only is None and not self._decide(data, final=False):
                carry = data
                continue
            data, carry = _hold_tail(data)
            yield self.normalise(data)
        if carry:
            self._decide(carry, final=True)
            yield self.normalise(carry)

    def _decide(self, data: bytes, *, final: bool) -> bool:
        if self.cr_only is None:
            self.cr_only = _line_mode(data, final=final)
            if self.cr_only:
                self._note("cr", "classic Mac OS line breaks (CR only): read as line breaks")
        return self.cr_only is not None

    def normalise(self, data: bytes) -> bytes:
        at = self.offset
        self.offset += len(data)
        if self.cr_only and b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not _odd_headers(data):
            return data
        if not self.cr_only and (m := _CR_BEFORE_HEADER.search(data)):
            raise InputFileError(
                self.name,
                f"mixed line breaks: expected LF or CRLF throughout, found a lone carriage return (CR) before '>' at byte "
                f"{at + m.start()} of the text, which would merge two records (convert the file to LF line breaks)",
            )
        fixed = _INDENTED_HEADER.sub(b"\n>", data)
        if len(fixed) != len(data):
            self._note("indent", "header lines indented by blanks before '>': read as headers")
        return fixed

    def _note(self, what: str, message: str) -> None:
        if what not in self.warned:
            self.warned.add(what)
            log.warning("%s: %s", self.name, message)


# -- records -----------------------------------------------------------------------------


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


def iter_record_groups(
    path: str | os.PathLike[str],
    *,
    display_name: str | None = None,
    tap: Callable[[bytes], None] | None = None,
    stream: TextStream | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Stream the file as groups of whole records: ``(line of the first header, text)``.

    ``text`` starts with the first record's ``>`` and ends just before the newline that
    precedes the next group's ``>`` (so records inside are separated by ``\\n>``), with
    LF line breaks (see the module docstring). Groups are about one read block (8 MiB)
    each. This is the fast path used by ingest; :func:`iter_records` gives one
    :class:`RawRecord` at a time. ``tap`` (if given) sees every block of decompressed
    text as read, before any line-break handling (the independent count of
    :mod:`foldatlas.inputs`); ``stream`` is filled in as for :func:`text_blocks`.

    Raises
    ------
    InputFileError
        The file cannot be opened or decompressed to a verified end, holds no record, or
        has text before its first ``>`` header (binary garbage included); the message
        names the file and the line or byte.
    """
    name = display_name or printable_path(str(path))
    stream = stream if stream is not None else TextStream()
    blocks = text_blocks(path, display_name=name, stream=stream)
    if tap is not None:
        blocks = _tapped(blocks, tap)
    line, buf, started = 1, b"", False
    for block in _LineBreaks(name)(blocks):
        data = buf + block if buf else block
        if not started:
            data, line = _first_header(data, line, name)
            if not data:
                buf = b""
                continue
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
        raise InputFileError(name, _no_record(stream))


def _tapped(blocks: Iterator[bytes], tap: Callable[[bytes], None]) -> Iterator[bytes]:
    for block in blocks:
        tap(block)
        yield block


def _first_header(data: bytes, line: int, name: str) -> tuple[bytes, int]:
    """Skip whitespace before the first header: ``(text from its '>', its line)``, or
    ``(b"", line)`` when the text so far is all whitespace."""
    stripped = data.lstrip(WHITESPACE)
    line += data[: len(data) - len(stripped)].count(b"\n")
    if stripped and not stripped.startswith(b">"):
        raise InputFileError(
            name,
            f"expected a FASTA header starting with '>', found {_describe(stripped[:1])}"
            " (not a FASTA file, or sequence before the first header)",
            line=line,
        )
    return stripped, line


def _no_record(stream: TextStream) -> str:
    if stream.file_bytes == 0:
        return "contains no FASTA record: the file is empty (0 bytes)"
    if stream.text_bytes == 0:
        return f"contains no FASTA record: its {stream.format} stream ({stream.file_bytes} bytes) decompresses to no text"
    return f"contains no FASTA record: its {stream.text_bytes} bytes of text are all whitespace"


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

