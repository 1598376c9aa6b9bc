"""The bad-input corpus: every case with its input and its expected, documented outcome.

Each case is either stopped at start-up / ingest with a message that must name the file
and line or the config key (``error``), or completes with every record accounted for
(``statuses``: the expected status of each record, in input order). ``tests/README.md``
lists the cases (``python tests/corpus/cases.py`` prints the table).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQV"


def fa(*records: tuple[str, str]) -> bytes:
    return "".join(f">{h}\n{s}\n" for h, s in records).encode()


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    files: dict[str, bytes] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # input.fasta entries (default: the files, sorted)
    error: str | None = None  # regex the error message must match
    statuses: tuple[str, ...] = ()  # expected record statuses, in input order

    @property
    def kind(self) -> str:
        return "config" if self.config and not self.files else "FASTA"


_truncated = gzip.compress(fa(*[(f"r{i}", SEQ) for i in range(3000)]))
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
    Case("zstd", "Zstandard-compressed FASTA", {"a.fa.zst": b"ZSTD"}, statuses=("ok", "ok")),
    Case("min_length_edges", "lengths min_length-1 and min_length (16)", {"a.fa": fa(("s15", SEQ[:15]), ("s16", SEQ[:16]))}, statuses=("too_short", "ok")),
    Case("max_length_edges", "lengths max_length and max_length+1 (1280)", {"a.fa": fa(("l1280", (SEQ * 30)[:1280]), ("l1281", (SEQ * 30)[:1281]))}, statuses=("ok", "too_long")),
    Case("all_unknown", "a sequence of X only (kept, folded without atoms)", {"a.fa": fa(("x", "X" * 40))}, statuses=("ok",)),
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
)


def write_case(case: Case, folder: str | os.PathLike[str]) -> list[str]:
    """Write the case's files into ``folder``; return its input.fasta entries."""
    from pathlib import Path

    root = Path(folder)
    for name, data in case.files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".zst"):
            import zstandard

            data = zstandard.ZstdCompressor().compress(fa(("z1", SEQ), ("z2", SEQ[::-1])))
        p.write_bytes(data)
    return list(case.inputs) if case.inputs else sorted(case.files)


def table() -> str:
    rows = ["| # | case | input | kind | expected outcome |", "| --- | --- | --- | --- | --- |"]
    for i, c in enumerate(CASES, 1):
        outcome = f"stops with an error matching `{c.error}`" if c.error else "completes; statuses " + ", ".join(c.statuses)
        rows.append(f"| {i} | `{c.name}` | {c.what} | {c.kind} | {outcome.replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
