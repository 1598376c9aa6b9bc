"""An independent count of each input file, for an accounting check that cannot be fooled.

While ingest reads a file, every block of its decompressed text also goes, untouched,
to an :class:`InputCounter`: simple code that shares nothing with the record parser
(no line-break handling, no grouping, no validation). It counts the file's bytes on disk
and decompressed, hashes the text (SHA-256: ``zcat file | sha256sum`` gives the same
digest) and counts header lines: lines (ended by LF, CRLF or a lone CR) whose first
character other than space, tab, VT or FF is ``>``. Ingest's records must equal that
count, file by file: ``plan_chunks`` checks the parts against it before anything is
folded, and ``check_accounting`` checks ``records.parquet`` and the atlas against it at
the end, so records lost anywhere between the decompressor and the atlas (or a stale or
partial part) cannot pass.

Each file's count is written as JSON next to its part, and ``plan_chunks`` gathers them
into ``<output.root>/ingest/inputs.json``::

    {"files": [{"source_index": 0, "source": "a.fa.gz", "format": "gzip",
                "file_bytes": 1234, "text_bytes": 5678, "records": 42,
                "text_sha256": "..."}, ...]}

``file_bytes`` are the bytes of the file (compressed, for gzip, bgzip and zstd),
``text_bytes`` the decompressed bytes, ``records`` the header lines counted,
``text_sha256`` the SHA-256 of the decompressed text.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .atomic import write_json
from .errors import AccountingError, InternalError
from .fasta import TextStream, text_blocks

__all__ = ["InputCount", "InputCounter", "count_file", "write_count", "read_count", "gather_counts", "inputs_summary", "read_inputs", "check_parts", "check_keys", "key_sums", "input_list_change"]

_BLANKS = b" \t\v\f"
_IS_BLANK = np.zeros(256, dtype=bool)
_IS_BLANK[list(_BLANKS)] = True


def _after_break(data: bytes, i: int) -> bool:
    """Whether only blanks lie between a line break and position ``i``."""
    j = i - 1
    while j >= 0 and data[j] in _BLANKS:
        j -= 1
    return j >= 0 and data[j] in b"\r\n"


@dataclass(frozen=True)
class InputCount:
    """The independent count of one input file (see the module docstring)."""

    source_index: int
    source: str
    format: str
    file_bytes: int
    text_bytes: int
    records: int
    text_sha256: str

    @property
    def source_id(self) -> str:
        """The file's stable id: its base name and the first 12 hex digits of the SHA-256
        of its text (``proteins.fasta.gz@3f2a9c1b7d4e``). The same file keeps its id
        wherever it is listed, moved or recompressed; another content is another id."""
        return f"{Path(self.source).name}@{self.text_sha256[:12]}"


class InputCounter:
    """Counts header lines and hashes the text of one file, fed block by block (``update``).

    A header is a line whose first non-blank character is ``>``; the text is treated as
    if it started with a line break. Blocks may be cut anywhere.
    """

    def __init__(self) -> None:
        self.headers = 0
        self.text_bytes = 0
        self._sha = hashlib.sha256()
        self._tail = b"\n"  # the end of the text so far, from its last line break, if only blanks follow

    def update(self, block: bytes) -> None:
        self._sha.update(block)
        self.text_bytes += len(block)
        data = self._tail + block
        a = np.frombuffer(data, dtype=np.uint8)
        gt = np.flatnonzero(a == 0x3E)
        gt = gt[gt > 0]
        prev = a[gt - 1]
        self.headers += int(np.count_nonzero((prev == 0x0A) | (prev == 0x0D)))
        blank = _IS_BLANK[prev]
        if blank.any():  # '>' after blanks: a header if only blanks lie between it and a line break
            self.headers += sum(_after_break(data, int(i)) for i in gt[blank])
        last = max(data.rfind(b"\n"), data.rfind(b"\r"))
        rest = data[last + 1 :] if last >= 0 else data
        self._tail = data[last:] if last >= 0 and not rest.translate(None, _BLANKS) else b""

    def result(self, *, source_index: int, source: str, stream: TextStream) -> InputCount:
        """The count of the file, once all its text has been fed."""
        if stream.text_bytes != self.text_bytes:
            raise InternalError(f"{source}: the counter saw {self.text_bytes} bytes of text, the reader {stream.text_bytes}")
        return InputCount(source_index, source, stream.format, stream.file_bytes, self.text_bytes, self.headers, self._sha.hexdigest())


def count_file(path: str | os.PathLike[str], *, source_index: int = 0, source: str | None = None) -> InputCount:
    """Count one file in a pass of its own (the same numbers ingest records while reading)."""
    name = source or str(path)
    stream = TextStream()
    counter = InputCounter()
    for block in text_blocks(path, display_name=name, stream=stream):
        counter.update(block)
    return counter.result(source_index=source_index, source=name, stream=stream)


def write_count(count: InputCount, path: str | os.PathLike[str]) -> None:
    """Write one file's count as JSON (atomically)."""
    write_json(path, asdict(count))


def read_count(path: str | os.PathLike[str]) -> InputCount:
    return InputCount(**json.loads(Path(path).read_text()))


def gather_counts(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> list[InputCount]:
    """Gather the per-file counts into ``inputs.json`` (files in input order); return them."""
    counts = sorted((read_count(p) for p in paths), key=lambda c: c.source_index)
    if [c.source_index for c in counts] != list(range(len(counts))):
        raise InternalError(f"input counts are not numbered 0..{len(counts) - 1}: {[c.source_index for c in counts]}")
    write_json(out, {"files": [asdict(c) for c in counts]})
    return counts


def inputs_summary(path: str | os.PathLike[str]) -> list[dict]:
    """The per-file records of ``inputs.json``, in input order, for ``summary.json``
    (``source_index``, ``source``, ``format``, ``file_bytes``, ``text_bytes``,
    ``records``, ``text_sha256``, and the stable ``source_id``; plain ints and strings,
    safe for JSON)."""
    return [{**asdict(c), "source_id": c.source_id} for c in read_inputs(path)]


def read_inputs(path: str | os.PathLike[str]) -> list[InputCount]:
    """The counts gathered in ``inputs.json``."""
    return [InputCount(**f) for f in json.loads(Path(path).read_text())["files"]]


def key_sums(n: int) -> list[int]:
    """The sums of 0..n-1, of their squares and of their cubes: what the sums of a
    file's ``record_index`` over its records are exactly when they are numbered 0..n-1,
    each once (two records sharing a key, or a key out of range, change them)."""
    s1 = n * (n - 1) // 2
    return [s1, (n - 1) * n * (2 * n - 1) // 6, s1 * s1]


#: DuckDB's per-file count and key power sums over a table of records (``{table}``).
KEY_SUMS_SQL = """SELECT source_index, count(*), sum(record_index::HUGEINT), sum(record_index::HUGEINT * record_index),
    sum(record_index::HUGEINT * record_index * record_index) FROM {table} GROUP BY source_index"""


def check_keys(counts: Sequence[InputCount], sums: dict[int, list[int]], what: str) -> None:
    """Raise :class:`AccountingError` unless every file's records in ``what`` are numbered
    0..n-1, each once (``sums``: source_index -> sums of record_index, its squares and
    cubes; :func:`key_sums`), for its independently counted n."""
    problems = [
        f"{c.source}: expected its {c.records} records numbered 0..{c.records - 1}, each once (record_index), in {what}; found other keys (two records share one, or one is out of that range)"
        for c in counts
        if sums.get(c.source_index, [0, 0, 0]) != key_sums(c.records)
    ]
    if problems:
        raise AccountingError(problems)


def check_parts(counts: Sequence[InputCount], rows: dict[int, int], what: str) -> None:
    """Raise :class:`AccountingError` unless ``rows`` (records per source_index, as read
    from ``what``) equal the independent counts, file by file."""
    problems = []
    for c in counts:
        got = rows.get(c.source_index, 0)
        if got != c.records:
            problems.append(f"{c.source}: the input holds {c.records} records (independent count of its header lines), {what} has {got}")
    extra = sorted(set(rows) - {c.source_index for c in counts})
    if extra:
        problems.append(f"{what} has records of source_index {extra}, which is no input file")
    if problems:
        raise AccountingError(problems)


def input_list_change(inputs: str | os.PathLike[str], current: Sequence[str]) -> str | None:
    """What a run's input list (``current``, expanded ``input.fasta``) changed since
    ``inputs`` (``inputs.json`` of the last plan) beyond files added at the end (which a
    newer part file shows to any rerun trigger): None when nothing else changed or there
    is no plan yet, else a sentence naming the files removed or moved."""
    path = Path(inputs)
    if not path.exists():
        return None
    planned = [c.source for c in read_inputs(path)]
    if list(current[: len(planned)]) == planned:
        return None
    removed = [s for s in planned if s not in current]
    if removed:
        return f"{len(removed)} input file(s) removed since the chunks were planned ({', '.join(removed[:3])}{', ...' if len(removed) > 3 else ''})"
    return "the input files were reordered since the chunks were planned"
