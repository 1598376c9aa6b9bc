"""The bad-input corpus: every case with its input and its expected, documented outcome.

Each case is either stopped at start-up / ingest with a message that must name the file
and line (or byte) or the config key (``error``), or completes with every record
accounted for (``statuses``: the expected status of each record, in input order).
``tests/README.md`` lists the cases (``python tests/corpus/cases.py`` prints the table).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field

import zstandard

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQV"


def fa(*records: tuple[str, str]) -> bytes:
    return "".join(f">{h}\n{s}\n" for h, s in records).encode()


def zst(data: bytes, *, checksum: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=checksum).compress(data)


def pzstd_like(data: bytes, piece: int) -> bytes:
    """What ``pzstd`` writes: per piece, a skippable frame holding the size of the Zstandard
    frame that follows, then that frame."""
    out = []
    for i in range(0, len(data), piece):
        frame = zst(data[i : i + piece])
        out.append(struct.pack("<III", 0x184D2A50, 4, len(frame)) + frame)
    return b"".join(out)


#: The empty block that ends every BGZF (bgzip) file.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def bgzf(data: bytes, block: int = 65280, *, eof: bool = True) -> bytes:
    """BGZF as ``bgzip`` writes it: gzip members of at most 64 KiB with a 'BC' extra field
    holding the block size, then the empty end-of-file block."""
    out = []
    for i in range(0, len(data), block):
        chunk = data[i : i + block]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        comp = c.compress(chunk) + c.flush()
        header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00" + struct.pack("<H", 18 + len(comp) + 8 - 1)
        out.append(header + comp + struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    return b"".join(out) + (BGZF_EOF if eof else b"")


def alias_bomb(width: int = 9, depth: int = 8) -> list:
    """What YAML anchors and aliases load as: a list that holds the same list ``width``
    times, ``depth`` levels deep (9**8 = 43 million strings once expanded)."""
    level: list = ["lol"] * width
    for _ in range(depth - 1):
        level = [level] * width
    return level


def self_reference() -> list:
    """``x: &x [a.fa, *x]``: a list that holds itself."""
    x: list = ["a.fa"]
    x.append(x)
    return x


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    files: dict[str, bytes] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # input.fasta entries (default: the files, sorted)
    error: str | None = None  # regex the error message must match
    statuses: tuple[str, ...] = ()  # expected record statuses, in input order
    links: tuple[tuple[str, str, str], ...] = ()  # ("hard" or "symbolic", link name, target)
    fifos: tuple[str, ...] = ()  # named pipes to make

    @property
    def kind(self) -> str:
        return "config" if self.config and not self.files else "FASTA"


_MANY = fa(*[(f"r{i}", SEQ) for i in range(3000)])
_truncated = gzip.compress(_MANY)
_zst = zst(_MANY)
_TRUNC = r"compressed stream is truncated: expected the end of the {} that starts at byte 0, found the end of the file at byte \d+"
_TWELVE = fa(*[(f"m{i} classic Mac", SEQ[i:] + SEQ[:i]) for i in range(12)])
CASES: tuple[Case, ...] = (
    Case("empty_file", "a file of zero bytes", {"a.fa": b""}, error=r"a\.fa: contains no FASTA record"),
    Case("only_headers", "headers without sequences", {"a.fa": b">a\n>b\n>c\n"}, statuses=("empty",) * 3),
    Case("sequence_before_header", "sequence text before the first '>'", {"a.fa": b"MKT\n>a\nMKT\n"}, error=r"a\.fa, line 1: expected a FASTA header"),
    Case("crlf", "Windows line endings", {"a.fa": fa(("a", SEQ)).replace(b"\n", b"\r\n")}, statuses=("ok",)),
    Case("lowercase", "lower-case residues (upper-cased)", {"a.fa": fa(("a", SEQ.lower()))}, statuses=("ok",)),
    Case("whitespace_inside", "spaces and tabs inside the sequence (removed)", {"a.fa": fa(("a", SEQ[:20] + " \t " + SEQ[20:]))}, statuses=("ok",)),
    Case("trailing_stop", "a '*' at the end (stripped)", {"a.fa": fa(("a", SEQ + "*"))}, statuses=("ok",)),
    Case("internal_stop", "a '*' in the middle", {"a.fa": fa(("a", SEQ[:20] + "*" + SEQ[20:]))}, statuses=("invalid_characters",)),
    Case("gaps", "alignment gaps '-'", {"a.fa": fa(("a", SEQ[:20] + "--" + SEQ[20:]))}, statuses=("invalid_characters",)),
    Case("digits", "digits in the sequence", {"a.fa": fa(("a", SEQ[:20] + "123" + SEQ[20:]))}, statuses=("invalid_characters",)),
    Case("non_ascii_header", "UTF-8 and invalid UTF-8 in headers (kept, U+FFFD)", {"a.fa": b">caf\xc3\xa9 h\n" + SEQ.encode() + b"\n>\xff\xfe x\n" + SEQ[1:].encode() + b"\n"}, statuses=("ok", "ok")),
    Case("control_char_header", "control characters in a header", {"a.fa": b">id\x07\x1b[31m red\n" + SEQ.encode() + b"\n"}, statuses=("ok",)),
    Case("non_ascii_sequence", "non-ASCII bytes in a sequence", {"a.fa": b">a\n" + SEQ[:10].encode() + b"\xc3\xa9\xff" + SEQ[10:].encode() + b"\n"}, statuses=("invalid_characters",)),
    Case("control_char_sequence", "a control character in a sequence", {"a.fa": b">a\n" + SEQ[:10].encode() + b"\x01" + SEQ[10:].encode() + b"\n"}, statuses=("invalid_characters",)),
    Case("ten_megabyte_line", "one 10 MB sequence line", {"a.fa": b">big\n" + (SEQ * (10_000_000 // len(SEQ))).encode() + b"\n>small\n" + SEQ.encode() + b"\n"}, statuses=("too_long", "ok")),
    Case("duplicate_ids_in_file", "the same id twice in one file, different sequences", {"a.fa": fa(("x", SEQ), ("x", SEQ[::-1]))}, statuses=("ok", "ok")),
    Case("duplicate_ids_across_files", "the same id in two files, different sequences", {"a.fa": fa(("x", SEQ)), "b.fa": fa(("x", SEQ[::-1]))}, statuses=("ok", "ok")),
    Case("duplicate_sequences", "the same sequence under two ids and in two files", {"a.fa": fa(("x", SEQ), ("y", SEQ)), "b.fa": fa(("z", SEQ.lower()))}, statuses=("ok", "duplicate", "duplicate")),
    Case("path_like_id", "an id that looks like a path", {"a.fa": fa(("../../etc/passwd", SEQ))}, statuses=("ok",)),
    Case("shell_metachar_id", "an id with shell metacharacters", {"a.fa": fa(("$(touch${IFS}pwned);`id`|&>x", SEQ))}, statuses=("ok",)),
    Case("empty_id", "a header line with nothing after '>'", {"a.fa": fa(("", SEQ))}, statuses=("ok",)),
    Case("truncated_gzip", "a gzip file cut in the middle", {"a.fa.gz": _truncated[: len(_truncated) // 2]}, error=r"a\.fa\.gz: compressed stream is truncated"),
    Case("gzip_of_garbage", "valid gzip holding binary garbage", {"a.fa.gz": gzip.compress(bytes(range(256)) * 4)}, error=r"a\.fa\.gz, line 1: expected a FASTA header .* found byte 0x00"),
    Case("binary_garbage", "a binary file", {"a.fa": b"\x7fELF\x02\x01\x01" + bytes(range(200))}, error=r"a\.fa, line 1: expected a FASTA header .* found byte 0x7f"),
    Case("zstd", "Zstandard-compressed FASTA", {"a.fa.zst": zst(fa(("z1", SEQ), ("z2", SEQ[::-1])))}, statuses=("ok", "ok")),
    Case("min_length_edges", "lengths min_length-1 and min_length (16)", {"a.fa": fa(("s15", SEQ[:15]), ("s16", SEQ[:16]))}, statuses=("too_short", "ok")),
    Case("max_length_edges", "lengths max_length and max_length+1 (1280)", {"a.fa": fa(("l1280", (SEQ * 30)[:1280]), ("l1281", (SEQ * 30)[:1281]))}, statuses=("ok", "too_long")),
    Case("all_unknown", "a sequence of X only (kept, folded: a backbone of UNK residues)", {"a.fa": fa(("x", "X" * 40))}, statuses=("ok",)),
    Case("on_invalid_fail", "ingest.on_invalid: fail with an invalid record", {"a.fa": fa(("good", SEQ), ("bad_one", SEQ[:5] + "-" + SEQ))}, config={"ingest": {"on_invalid": "fail"}}, error=r"a\.fa, line 3: invalid record 'bad_one': invalid characters: '-'"),
    Case("missing_file", "input.fasta names a file that does not exist", inputs=("nope.fa",), error=r"nope\.fa: file does not exist"),
    Case("directory_as_file", "input.fasta names a directory", {"d/a.fa": fa(("a", SEQ))}, inputs=("d",), error=r"d: is a directory"),
    Case("unreadable_path", "a path through a regular file (unreadable for anyone, root included)", {"f": b"x"}, inputs=("f/a.fa",), error=r"f/a\.fa: file does not exist"),
    Case("glob_matches_nothing", "a glob that matches no file", inputs=("*.fasta",), error=r"\*\.fasta: glob matches no file"),
    Case("file_listed_twice", "the same file named twice", {"a.fa": fa(("a", SEQ))}, inputs=("a.fa", "*.fa"), error=r"listed twice"),
    Case("plddt_threshold_100_scale", "filter.min_plddt on the 0-100 scale", config={"filter": {"min_plddt": 70}}, error=r"config key 'filter\.min_plddt' = 70 is out of range: expected a number in \[0, 1\]"),
    Case("negative_length", "a negative ingest.max_length", config={"ingest": {"max_length": -1}}, error=r"config key 'ingest\.max_length' = -1 is out of range"),
    Case("unknown_key", "a typo in a key", config={"filter": {"min_pldt": 0.5}}, error=r"unknown config key 'filter\.min_pldt' \(did you mean 'min_plddt'\?\)"),
    Case("chunk_size_zero", "chunks.max_sequences: 0", config={"chunks": {"max_sequences": 0}}, error=r"config key 'chunks\.max_sequences' = 0 is out of range"),
    Case("gpu_seconds_zero", "chunks.gpu_seconds: 0", config={"chunks": {"gpu_seconds": 0}}, error=r"config key 'chunks\.gpu_seconds' = 0 is out of range: expected a number in \(0"),
    Case("wrong_type", "a string where a number belongs", config={"fold": {"num_recycles": "four"}}, error=r"config key 'fold\.num_recycles' = 'four' has the wrong type"),
    Case("bad_device", "an unknown fold.device", config={"fold": {"device": "gpu"}}, error=r"config key 'fold\.device' = 'gpu'"),
    # issue 13: silent loss at ingest
    Case("truncated_zstd_30", "a Zstandard file cut at 30% of its bytes", {"a.fa.zst": _zst[: len(_zst) * 3 // 10]}, error=r"a\.fa\.zst: " + _TRUNC.format("zstd frame")),
    Case("truncated_zstd_99_9", "a Zstandard file cut at 99.9% of its bytes", {"a.fa.zst": _zst[: len(_zst) * 999 // 1000]}, error=r"a\.fa\.zst: " + _TRUNC.format("zstd frame")),
    Case("truncated_zstd_last_byte", "a Zstandard file without its last byte (checksum cut)", {"a.fa.zst": _zst[:-1]}, error=r"a\.fa\.zst: " + _TRUNC.format("zstd frame")),
    Case("truncated_gzip_trailer", "a gzip file without its last 4 bytes (length field)", {"a.fa.gz": _truncated[:-4]}, error=r"a\.fa\.gz: " + _TRUNC.format("gzip member")),
    Case("zstd_checksum_mismatch", "a Zstandard frame whose content checksum does not match", {"a.fa.zst": _zst[:-1] + bytes([_zst[-1] ^ 1])}, error=r"a\.fa\.zst: compressed data is corrupt: the zstd frame that starts at byte 0 .*checksum"),
    Case("gzip_crc_mismatch", "a gzip member whose CRC-32 does not match", {"a.fa.gz": _truncated[:-8] + bytes([_truncated[-8] ^ 1]) + _truncated[-7:]}, error=r"a\.fa\.gz: compressed data is corrupt: the gzip member that starts at byte 0 .*incorrect data check"),
    Case("zstd_multi_frame", "Zstandard, two frames (zstd of two files, concatenated)", {"a.fa.zst": zst(fa(("f1", SEQ))) + zst(fa(("f2", SEQ[::-1])), checksum=False)}, statuses=("ok", "ok")),
    Case("pzstd", "Zstandard as pzstd writes it (skippable frames)", {"a.fa.zst": pzstd_like(_TWELVE, 200)}, statuses=("ok",) * 12),
    Case("truncated_pzstd_frame", "pzstd output cut inside its second frame", {"a.fa.zst": pzstd_like(_TWELVE, 200)[:-20]}, error=r"a\.fa\.zst: compressed stream is truncated: expected the end of the zstd frame that starts at byte [1-9]"),
    Case("gzip_multi_member", "gzip, two members (gzip of two files, concatenated)", {"a.fa.gz": gzip.compress(fa(("g1", SEQ))) + gzip.compress(fa(("g2", SEQ[::-1])))}, statuses=("ok", "ok")),
    Case("gzip_zero_padding", "gzip followed by zero bytes (tape padding; gzip accepts it)", {"a.fa.gz": gzip.compress(fa(("g1", SEQ))) + b"\0" * 100}, statuses=("ok",)),
    Case("gzip_trailing_garbage", "gzip followed by other bytes", {"a.fa.gz": gzip.compress(fa(("g1", SEQ))) + b"junk"}, error=r"a\.fa\.gz: expected another gzip member or the end of the file at byte \d+, found bytes 6a 75 6e 6b"),
    Case("bgzip", "BGZF (bgzip) blocks", {"a.fa.gz": bgzf(_TWELVE, 300)}, statuses=("ok",) * 12),
    Case("bgzip_without_eof_block", "bgzip cut between two blocks (no end-of-file block)", {"a.fa.gz": bgzf(_TWELVE, 300, eof=False)}, error=r"a\.fa\.gz: compressed stream is truncated: expected the bgzip end-of-file block"),
    Case("gzip_of_nothing", "a gzip file holding no text: nothing decodes", {"a.fa.gz": gzip.compress(b"")}, error=r"a\.fa\.gz: contains no FASTA record: its gzip stream \(\d+ bytes\) decompresses to no text"),
    Case("whitespace_only", "a file of blank lines", {"a.fa": b"\n \n\t\n"}, error=r"a\.fa: contains no FASTA record: its 5 bytes of text are all whitespace"),
    Case("bzip2", "a bzip2-compressed file (not supported)", {"a.fa.bz2": b"BZh91AY&SY" + bytes(20)}, error=r"a\.fa\.bz2: is bzip2-compressed; expected plain, gzip or Zstandard"),
    Case("cr_only", "classic Mac OS line breaks (CR only), 12 records", {"a.fa": _TWELVE.replace(b"\n", b"\r")}, statuses=("ok",) * 12),
    Case("cr_before_header", "a lone CR before '>' in a file with LF line breaks (mixed)", {"a.fa": b">a\n" + SEQ.encode() + b"\r>b\n" + SEQ.encode() + b"\n"}, error=r"a\.fa: mixed line breaks: expected LF or CRLF throughout, found a lone carriage return \(CR\) before '>' at byte 60"),
    Case("indented_header", "blanks before '>' (read as a header, not merged)", {"a.fa": b">a\n" + SEQ.encode() + b"\n  \t>b\n" + SEQ[::-1].encode() + b"\n"}, statuses=("ok", "ok")),
    Case("stray_cr_in_header", "a lone CR inside a header of an LF file (kept in the header)", {"a.fa": b">a x\ry\n" + SEQ.encode() + b"\n"}, statuses=("ok",)),
    Case("literal_brackets", "a file named a[1].fa while a1.fa exists: taken literally", {"a[1].fa": fa(("b1", SEQ), ("b2", SEQ[::-1])), "a1.fa": fa(("one", SEQ))}, inputs=("a[1].fa",), statuses=("ok", "ok")),
    Case("literal_star_question", "files named x*.fa and y?.fa while xy.fa exists: taken literally", {"x*.fa": fa(("s", SEQ)), "y?.fa": fa(("q", SEQ[::-1])), "xy.fa": fa(("xy1", SEQ), ("xy2", SEQ[1:]))}, inputs=("x*.fa", "y?.fa"), statuses=("ok", "ok")),
    Case("glob_when_no_literal", "a?.fa names no file: a glob (matches ab.fa)", {"ab.fa": fa(("ab", SEQ))}, inputs=("a?.fa",), statuses=("ok",)),
    Case("hard_link_twice", "the same file listed under two names (hard link)", {"a.fa": fa(("a", SEQ))}, inputs=("a.fa", "b.fa"), links=(("hard", "b.fa", "a.fa"),), error=r"b\.fa: listed twice in input\.fasta \(also as 'a\.fa': the same file"),
    Case("symlink_twice", "the same file listed through a symbolic link", {"d/a.fa": fa(("a", SEQ))}, inputs=("d/a.fa", "s.fa"), links=(("symbolic", "s.fa", "d/a.fa"),), error=r"s\.fa: listed twice in input\.fasta \(also as 'd/a\.fa': the same file"),
    Case("broken_symlink", "a symbolic link to a missing file", inputs=("s.fa",), links=(("symbolic", "s.fa", "gone.fa"),), error=r"s\.fa: is a symbolic link to a missing file"),
    Case("fifo", "a named pipe (FIFO) as input (would block forever)", inputs=("p.fa",), fifos=("p.fa",), error=r"p\.fa: is a named pipe \(FIFO\), expected a regular FASTA file"),
    Case("non_utf8_file_name", "a file name that is not UTF-8 (matched by a glob)", {"\udcff.fa": fa(("a", SEQ))}, inputs=("*.fa",), error=r"\\xff\.fa: file name is not valid UTF-8"),
    # issue 13: bad settings
    Case("nan_min_plddt", "filter.min_plddt: .nan", config={"filter": {"min_plddt": float("nan")}}, error=r"config key 'filter\.min_plddt' = nan is not a finite number"),
    Case("nan_commit_seconds", "fold.commit_seconds: .nan (would never commit)", config={"fold": {"commit_seconds": float("nan")}}, error=r"config key 'fold\.commit_seconds' = nan is not a finite number"),
    Case("inf_cost", "chunks.cost.cubic: .inf", config={"chunks": {"cost": {"cubic": float("inf")}}}, error=r"config key 'chunks\.cost\.cubic' = inf is not a finite number"),
    Case("huge_cost", "chunks.cost.cubic: 1e300 (overflows the estimate)", config={"chunks": {"cost": {"cubic": 1e300}}}, error=r"config key 'chunks\.cost\.cubic' = 1e\+300 is out of range: expected a number in \[0, 1000000\]"),
    Case("nan_memory_gb", "ingest.memory_gb: .nan", config={"ingest": {"memory_gb": float("nan")}}, error=r"config key 'ingest\.memory_gb' = nan is not a finite number"),
    Case("tiny_memory_gb", "ingest.memory_gb: 0.001 (DuckDB cannot work in 1 MB)", config={"ingest": {"memory_gb": 0.001}}, error=r"config key 'ingest\.memory_gb' = 0\.001 is out of range: expected a number in \[0\.1, 4096\]"),
    Case("min_length_above_max", "ingest.min_length > ingest.max_length", config={"ingest": {"min_length": 500, "max_length": 100}}, error=r"config keys 'ingest\.min_length' = 500 and 'ingest\.max_length' = 100: expected min_length <= max_length"),
    Case("alias_bomb", "a YAML alias bomb (43 million values once expanded)", config={"input": {"fasta": alias_bomb()}}, error=r"the configuration holds more than 200,000 values .* alias bomb"),
    Case("self_referencing_alias", "a YAML alias that holds itself", config={"input": {"fasta": self_reference()}}, error=r"nests deeper than 32 levels .* self-referencing alias"),
    Case("megabyte_value", "a 1 MB string as a value (echoed shortened)", config={"fold": {"device": "A" * 1_000_000}}, error=r"config key 'fold\.device' = 'A+\.\.\.A+'"),
)


def write_case(case: Case, folder: str | os.PathLike[str]) -> list[str]:
    """Write the case's files, links and FIFOs into ``folder``; return its input.fasta entries."""
    from pathlib import Path

    root = Path(folder)
    for name, data in case.files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for kind, link, target in case.links:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        if kind == "hard":
            os.link(root / target, root / link)
        else:
            os.symlink(os.path.relpath(root / target, (root / link).parent), root / link)
    for name in case.fifos:
        os.mkfifo(root / name)
    return list(case.inputs) if case.inputs else sorted(case.files)


def table() -> str:
    rows = ["| # | case | input | kind | expected outcome |", "| --- | --- | --- | --- | --- |"]
    for i, c in enumerate(CASES, 1):
        outcome = f"stops with an error matching `{c.error}`" if c.error else "completes; statuses " + ", ".join(c.statuses)
        rows.append(f"| {i} | `{c.name}` | {c.what} | {c.kind} | {outcome.replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
