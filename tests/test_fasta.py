"""Parser and validator on every bad-input case of ingest."""

from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from conftest import read_part, write_fasta
from foldatlas import fasta
from foldatlas.errors import InputFileError, InvalidRecordError
from foldatlas.fasta import expand_inputs, iter_records, validate_sequence

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"


def records(path, **kw):
    return list(iter_records(path, **kw))


def verdict(body: bytes, lo=5, hi=100):
    return validate_sequence(body, min_length=lo, max_length=hi)


@pytest.mark.parametrize("compress", [None, "gz", "zst"])
def test_formats_read_identically(tmp_path, compress):
    recs = [("a first", SEQ), ("b", SEQ[::-1]), ("c third record", SEQ * 3)]
    path = write_fasta(tmp_path / "x.fa", recs, compress=compress)
    got = records(path)
    assert [r.header.decode() for r in got] == [h for h, _ in recs]
    assert [verdict(r.body, hi=1000).sequence.decode() for r in got] == [s for _, s in recs]
    assert [r.line for r in got] == [1, 3, 5]


def test_line_numbers_across_block_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta, "_BLOCK", 7)  # records straddle many blocks
    recs = [(f"r{i}", SEQ[: 5 + i]) for i in range(30)]
    path = write_fasta(tmp_path / "x.fa", recs, width=4)
    got = records(path)
    assert [r.header.decode() for r in got] == [h for h, _ in recs]
    expected, line = [], 1
    for _, s in recs:
        expected.append(line)
        line += 1 + -(-len(s) // 4)
    assert [r.line for r in got] == expected


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 23])
def test_cr_only_line_breaks_are_read_as_line_breaks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(fasta, "_BLOCK", block)
    path = tmp_path / "mac.fa"
    path.write_bytes(b">id1 desc\rMKTA\rYIAK\r\r>id2\rQRQ\r")
    got = records(path)
    assert [(r.line, r.header, verdict(r.body, lo=1).sequence) for r in got] == [(1, b"id1 desc", b"MKTAYIAK"), (5, b"id2", b"QRQ")]


@pytest.mark.parametrize("block", [1, 2, 5, 1 << 23])
def test_indented_headers_are_headers(tmp_path, monkeypatch, block):
    """Before, '  >b' was read as part of a's sequence: two records merged into one."""
    monkeypatch.setattr(fasta, "_BLOCK", block)
    path = tmp_path / "i.fa"
    path.write_bytes(b">a\nMKT\n  >b x\nQRQ\r\n\t \f>c\r\nAAA\n>d->e > f\nMK>T\n")
    got = records(path)
    assert [(r.line, r.header) for r in got] == [(1, b"a"), (3, b"b x"), (5, b"c\r"), (7, b"d->e > f")]
    assert verdict(got[3].body, lo=1).status == "invalid_characters"  # '>' inside a sequence line stays invalid


def test_lone_cr_before_a_header_in_an_lf_file_is_an_error(tmp_path):
    path = tmp_path / "m.fa"
    path.write_bytes(b">a\nMKT\n" * 3 + b">b\nMKT\r>c\nQRQ\n")
    with pytest.raises(InputFileError, match=r"m\.fa: mixed line breaks: .* lone carriage return \(CR\) before '>' at byte 27 of the text"):
        records(path)


def test_stray_cr_in_an_lf_file_changes_nothing(tmp_path):
    path = tmp_path / "s.fa"
    path.write_bytes(b">a x\ry\nMK\rT\n>b\nQRQ\n")
    got = records(path)
    assert [(r.header, verdict(r.body, lo=1).sequence) for r in got] == [(b"a x\ry", b"MKT"), (b"b", b"QRQ")]


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.fa"
    path.write_bytes(b">id1 desc\r\nMKTA\r\nYIAK\r\n>id2\r\nQRQ\r\n")
    got = records(path)
    assert fasta.decode_header(got[0].header) == ("id1", "id1 desc")
    assert verdict(got[0].body, lo=1).sequence == b"MKTAYIAK"
    assert verdict(got[1].body, lo=1).sequence == b"QRQ"


def test_normalisation_lowercase_whitespace_trailing_stop():
    v = verdict(b"mkt ay\tia\nkq*\n")
    assert (v.status, v.sequence) == ("ok", b"MKTAYIAKQ")


@pytest.mark.parametrize(
    "body, named",
    [
        (b"MKT*AYIAKQ", "'*'"),  # stop codon in the middle
        (b"MKT--AYIAKQ", "'-'"),  # alignment gaps
        (b"MKT12AYIAKQ", "'1', '2'"),  # digits
        (b"MKT.AYIAKQ", "'.'"),
        ("MKTÄAYIAKQ".encode(), "'Ä'"),  # non-ASCII letter
        (b"MKT\x01AYIAKQ", "U+0001"),  # control character
        (b"MKT\xffAYIAKQ", "non-UTF-8 bytes"),
    ],
)
def test_invalid_characters_are_named(body, named):
    v = verdict(body)
    assert v.status == "invalid_characters"
    assert named in v.reason


def test_empty_and_stop_only_records():
    assert verdict(b"").status == "empty"
    assert verdict(b"\n\n  \n").status == "empty"
    assert verdict(b"*").status == "empty"


def test_length_bounds_are_inclusive():
    assert verdict(b"A" * 4, lo=5).status == "too_short"
    assert verdict(b"A" * 5, lo=5).status == "ok"
    assert verdict(b"A" * 100, hi=100).status == "ok"
    v = verdict(b"A" * 101, hi=100)
    assert v.status == "too_long" and "101 > ingest.max_length 100" in v.reason


def test_nonstandard_residues_are_kept_and_counted():
    v = verdict(b"XXXXXXXX")
    assert (v.status, v.n_nonstandard) == ("ok", 8)
    v = verdict(b"MKBZUOXAA")
    assert (v.status, v.n_nonstandard) == ("ok", 5)


def test_checksum_is_md5_of_normalised_sequence():
    assert fasta.sequence_checksum(b"MKTA") == hashlib.md5(b"MKTA").hexdigest()


def test_headers_with_non_ascii_control_and_hostile_ids_are_kept_verbatim(tmp_path):
    path = tmp_path / "h.fa"
    path.write_bytes(
        b">../../etc/passwd a path\nMKTAYIAK\n>$(rm -rf ~);`x`|&\nMKTAYIAK\n>caf\xc3\xa9 \x07bell\nMKTAYIAK\n>\xff\xfe bad\nMKTAYIAK\n"
    )
    ids = [fasta.decode_header(r.header)[0] for r in records(path)]
    assert ids == ["../../etc/passwd", "$(rm", "café", "\ufffd\ufffd"]


def test_only_headers(tmp_path):
    path = tmp_path / "h.fa"
    path.write_text(">a\n>b\n>c\n")
    got = records(path)
    assert [verdict(r.body).status for r in got] == ["empty"] * 3


def test_blank_lines_before_first_header_are_allowed(tmp_path):
    path = tmp_path / "b.fa"
    path.write_text("\n\n>a\nMKTAYIAK\n")
    assert records(path)[0].line == 3


def test_sequence_before_first_header_fails_with_line(tmp_path):
    path = tmp_path / "s.fa"
    path.write_text("\nMKTAYIAK\n>a\nMKT\n")
    with pytest.raises(InputFileError, match=r"s\.fa, line 2: expected a FASTA header starting with '>', found 'M'"):
        records(path)


def test_empty_file_fails(tmp_path):
    path = tmp_path / "e.fa"
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match="no FASTA record"):
        records(path)


MANY = b"".join(b">r%d\n%s\n" % (i, SEQ.encode()) for i in range(2000))


def _compressed(kind: str, data: bytes = MANY) -> bytes:
    import zstandard

    return gzip.compress(data) if kind == "gz" else zstandard.ZstdCompressor(write_checksum=True).compress(data)


@pytest.mark.parametrize("kind, unit", [("gz", "gzip member"), ("zst", "zstd frame")])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9, 0.999, -1, -4])
def test_truncated_stream_fails_with_file_and_compressed_offset(tmp_path, kind, unit, fraction):
    """Cut at 30%...99.9% of its bytes, or short of its last 1 or 4 bytes (the checksum or
    length): before, zstd read the cut file as whole and its cut record as ok."""
    data = _compressed(kind)
    cut = len(data) + fraction if fraction < 0 else int(len(data) * fraction)
    path = tmp_path / f"t.fa.{kind}"
    path.write_bytes(data[:cut])
    with pytest.raises(InputFileError) as info:
        records(path)
    expected = f"t.fa.{kind}: compressed stream is truncated: expected the end of the {unit} that starts at byte 0, found the end of the file at byte {cut}"
    assert expected in str(info.value)


def test_truncated_stream_never_yields_a_partial_part(tmp_path):
    data = _compressed("zst")
    path = tmp_path / "t.fa.zst"
    path.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(InputFileError, match="truncated"):
        read_part(path, tmp_path / "p.parquet", source="t.fa.zst", source_index=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.fa.zst"]


def test_truncated_second_frame_names_its_offset(tmp_path):
    first = _compressed("zst", MANY[:5000])
    second = _compressed("zst", MANY[5000:])
    path = tmp_path / "m.fa.zst"
    path.write_bytes(first + second[:-10])
    with pytest.raises(InputFileError, match=f"the zstd frame that starts at byte {len(first)}, found the end of the file at byte {len(first) + len(second) - 10}"):
        records(path)
    path.write_bytes(first + second)
    assert len(records(path)) == 2000


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_corrupt_checksum_fails(tmp_path, kind):
    data = bytearray(_compressed(kind))
    data[-8 if kind == "gz" else -1] ^= 1  # gzip: the CRC-32; zstd: the content checksum
    path = tmp_path / f"c.fa.{kind}"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"compressed data is corrupt: .* that starts at byte 0 .*(incorrect data check|checksum)"):
        records(path)


def test_pzstd_skippable_frames_and_bgzip_are_read_whole(tmp_path):
    from corpus.cases import BGZF_EOF, bgzf, pzstd_like

    (tmp_path / "p.fa.zst").write_bytes(pzstd_like(MANY, 10_000))
    (tmp_path / "b.fa.gz").write_bytes(bgzf(MANY, 10_000))
    for name in ("p.fa.zst", "b.fa.gz"):
        stream = fasta.TextStream()
        assert b"".join(fasta.text_blocks(tmp_path / name, stream=stream)) == MANY
        assert stream.file_bytes == (tmp_path / name).stat().st_size and stream.text_bytes == len(MANY)
    assert stream.format == "bgzip"
    cut = bgzf(MANY, 10_000)[: -len(BGZF_EOF)]
    (tmp_path / "cut.fa.gz").write_bytes(cut)
    with pytest.raises(InputFileError, match=f"expected the bgzip end-of-file block, found the end of the file at byte {len(cut)}"):
        records(tmp_path / "cut.fa.gz")


def test_real_pzstd_output_is_read_whole(tmp_path):
    import shutil
    import subprocess

    if shutil.which("pzstd") is None:
        pytest.skip("pzstd is not installed (Debian package zstd)")
    (tmp_path / "in.fa").write_bytes(MANY * 20)
    subprocess.run(["pzstd", "-q", "-p", "2", str(tmp_path / "in.fa"), "-o", str(tmp_path / "in.fa.zst")], check=True)
    data = (tmp_path / "in.fa.zst").read_bytes()
    assert data[:4] == b"\x50\x2a\x4d\x18"  # starts with a skippable frame
    assert b"".join(fasta.text_blocks(tmp_path / "in.fa.zst")) == MANY * 20


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "contains no FASTA record: the file is empty (0 bytes)"),
        (gzip.compress(b""), "contains no FASTA record: its gzip stream (20 bytes) decompresses to no text"),
        (b"\n\n", "contains no FASTA record: its 2 bytes of text are all whitespace"),
        (b"BZh91AY&SY", "is bzip2-compressed; expected plain, gzip or Zstandard FASTA"),
        (b"\xfd7zXZ\x00\x00", "is xz-compressed"),
    ],
)
def test_nothing_decoded_is_not_called_empty(tmp_path, data, message):
    path = tmp_path / "x.fa"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as info:
        records(path)
    assert message in str(info.value)


def test_gzip_of_binary_garbage_fails(tmp_path):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(bytes(range(256)) * 10))
    with pytest.raises(InputFileError, match=r"line 1: expected a FASTA header .* found byte 0x00"):
        records(path)


def test_corrupt_gzip_fails(tmp_path):
    data = bytearray(gzip.compress(b">a\n" + SEQ.encode() * 100 + b"\n"))
    data[20:40] = b"\x00" * 20
    path = tmp_path / "c.fa.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"c\.fa\.gz: compressed data is corrupt: the gzip member that starts at byte 0"):
        records(path)


def test_binary_garbage_fails(tmp_path):
    path = tmp_path / "bin.fa"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    with pytest.raises(InputFileError, match="found byte 0x89"):
        records(path)


def test_ten_megabyte_single_line(tmp_path):
    seq = (SEQ * (10_000_000 // len(SEQ) + 1))[:10_000_000]
    path = tmp_path / "big.fa"
    path.write_bytes(b">big\n" + seq.encode() + b"\n>small\nMKTAYIAK\n")
    got = records(path)
    assert len(got) == 2
    v = validate_sequence(got[0].body, min_length=1, max_length=1280)
    assert (v.status, len(v.sequence)) == ("too_long", 10_000_000)
    assert got[1].line == 3


def test_missing_file_glob_and_duplicates(tmp_path):
    (tmp_path / "a.fa").write_text(">a\nMKT\n")
    (tmp_path / "b.fa").write_text(">b\nMKT\n")
    (tmp_path / "d").mkdir()
    assert expand_inputs(["*.fa"], base=tmp_path) == ["a.fa", "b.fa"]
    with pytest.raises(InputFileError, match=r"nope\.fa: file does not exist"):
        expand_inputs(["nope.fa"], base=tmp_path)
    with pytest.raises(InputFileError, match=r"\*\.fasta: glob matches no file"):
        expand_inputs(["*.fasta"], base=tmp_path)
    with pytest.raises(InputFileError, match="listed twice"):
        expand_inputs(["a.fa", "*.fa"], base=tmp_path)
    with pytest.raises(InputFileError, match="is a directory"):
        expand_inputs(["d"], base=tmp_path)
    with pytest.raises(InputFileError, match="no input files"):
        expand_inputs([], base=tmp_path)


def test_an_existing_path_is_literal_and_only_other_entries_are_globs(tmp_path):
    for name in ("a[1].fa", "a1.fa", "q?.fa", "qx.fa", "s*.fa", "sx.fa"):
        (tmp_path / name).write_text(f">{name}\nMKT\n")
    assert expand_inputs(["a[1].fa", "q?.fa", "s*.fa"], base=tmp_path) == ["a[1].fa", "q?.fa", "s*.fa"]
    assert expand_inputs(["a[12].fa"], base=tmp_path) == ["a1.fa"]  # no file has that name: a glob
    assert expand_inputs([str(tmp_path / "a[1].fa")]) == [str(tmp_path / "a[1].fa")]
    with pytest.raises(InputFileError, match=r"a\[3\]\.fa: glob matches no file \(and no file has this exact name\)"):
        expand_inputs(["a[3].fa"], base=tmp_path)


def test_the_same_file_through_a_link_is_listed_twice(tmp_path):
    (tmp_path / "a.fa").write_text(">a\nMKT\n")
    os.link(tmp_path / "a.fa", tmp_path / "hard.fa")
    os.symlink("a.fa", tmp_path / "soft.fa")
    for second in ("hard.fa", "soft.fa"):
        with pytest.raises(InputFileError, match=rf"{second.replace('.', '[.]')}: listed twice in input.fasta \(also as 'a.fa': the same file \(device and inode\)"):
            expand_inputs(["a.fa", second], base=tmp_path)
    assert expand_inputs(["soft.fa"], base=tmp_path) == ["soft.fa"]  # a link alone is fine


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "p.fa")
    with pytest.raises(InputFileError, match=r"p\.fa: is a named pipe \(FIFO\), expected a regular FASTA file"):
        expand_inputs(["p.fa"], base=tmp_path)
    with pytest.raises(InputFileError, match=r"is a named pipe \(FIFO\)"):
        records(tmp_path / "p.fa")  # opened directly: refused at once, no writer needed


def test_non_utf8_file_name_is_refused_printably(tmp_path):
    (tmp_path / os.fsdecode(b"\xff\xfe.fa")).write_text(">a\nMKT\n")
    with pytest.raises(InputFileError) as info:
        expand_inputs(["*.fa"], base=tmp_path)
    text = str(info.value)
    assert text.startswith("\\xff\\xfe.fa: file name is not valid UTF-8")
    text.encode("utf-8")  # printable: no surrogates left


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.fa"
    path.write_text(">a\nMKT\n")
    path.chmod(0)
    with pytest.raises(InputFileError, match="cannot open"):
        records(path)


def test_unreadable_path_is_a_clear_error(tmp_path):
    # works as root too: a path whose parent is a file cannot be opened by anyone
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputFileError, match=r"cannot open: Not a directory"):
        records(tmp_path / "file" / "x.fa")


def test_read_fasta_file_records_every_record(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "in.fa"
    path.write_bytes(b">ok1\nMKTAYIAK\n>gap\nMK-TAYIAK\n>empty\n>short\nMK\n>long\n" + b"A" * 30 + b"\n>x\nXXXXXX\n")
    counts = read_part(path, tmp_path / "part.parquet", source="in.fa", source_index=3, min_length=5, max_length=20)
    t = pq.read_table(tmp_path / "part.parquet")
    assert t.num_rows == 6 == sum(counts.values())
    assert t["status"].to_pylist() == ["ok", "invalid_characters", "empty", "too_short", "too_long", "ok"]
    assert t["line"].to_pylist() == [1, 3, 5, 6, 8, 10]
    assert set(t["source_index"].to_pylist()) == {3}
    assert t["sequence"].to_pylist() == ["MKTAYIAK", None, None, "MK", "A" * 30, "XXXXXX"]
    assert t["n_nonstandard"].to_pylist() == [0, 0, 0, 0, 0, 6]


def test_on_invalid_fail_names_file_line_and_id(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text(">ok1\nMKTAYIAK\n>bad_one desc\nMKT1AYIAK\n")
    with pytest.raises(InvalidRecordError, match=r"in\.fa, line 3: invalid record 'bad_one': invalid characters: '1'") as info:
        read_part(path, tmp_path / "p.parquet", source="in.fa", source_index=0, min_length=1, max_length=100, on_invalid="fail")
    assert info.value.record_id == "bad_one" and info.value.line == 3
    assert not (tmp_path / "p.parquet").exists()  # no half-written part
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.parquet")]


def _reference(path, min_length, max_length):
    """Record-by-record reference: iter_records + validate_sequence + decode_header."""
    out = []
    for r in iter_records(path):
        v = validate_sequence(r.body, min_length=min_length, max_length=max_length)
        rid, header = fasta.decode_header(r.header)
        has_seq = v.status in ("ok", "too_short", "too_long")
        out.append(
            {
                "record_index": r.index,
                "line": r.line,
                "id": rid,
                "header": header,
                "checksum": hashlib.md5(v.sequence).hexdigest() if has_seq else None,
                "length": len(v.sequence),
                "n_nonstandard": v.n_nonstandard,
                "status": v.status,
                "reason": v.reason,
                "sequence": v.sequence.decode() if has_seq else None,
            }
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_reader_equals_record_by_record_reference(tmp_path, monkeypatch, seed):
    import random

    import pyarrow.parquet as pq

    rng = random.Random(seed)
    pieces = [b"ACDEFGHIKLMNPQRSTVWY", b"acdefghiklmnpqrstvwy", b"XBZUO", b"xbzuo", b" ", b"\t", b"\r", b"*", b"-", b"1", b"\xc3\xa9", b"\xff", b"\x01"]
    weights = [60, 10, 3, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    lines = []
    for i in range(300):
        header = rng.choice([b"id%d desc" % i, b"  lead%d" % i, b"", b"caf\xc3\xa9 %d" % i, b"\xff\xfe%d" % i, b"tab\tsep", b"cr%d\r" % i])
        body = bytes(rng.choice(rng.choices(pieces, weights)[0]) for _ in range(rng.choice([0, 1, 3, 15, 40, 90])))
        if rng.random() < 0.2:
            body += b"*"
        width = rng.choice([7, 60, 1000])
        lines.append(b">" + header + b"\n" + b"".join(body[k : k + width] + rng.choice([b"\n", b"\r\n"]) for k in range(0, len(body), width)))
        if rng.random() < 0.05:
            lines.append(b"\n")
    path = tmp_path / "r.fa"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(fasta, "_BLOCK", rng.choice([50, 333, 1 << 20]))  # groups break anywhere
    read_part(path, tmp_path / "p.parquet", source="r.fa", source_index=0, min_length=5, max_length=60, workers=rng.choice([1, 2]))
    got = pq.read_table(tmp_path / "p.parquet").drop_columns(["source", "source_index"]).to_pylist()
    want = _reference(path, 5, 60)
    assert len(got) == len(want) == 300
    for g, w in zip(got, want):
        assert g == w


# -- the independent count (foldatlas.inputs) ----------------------------------------


def _random_fasta(rng, n: int, breaks: str) -> bytes:
    out = []
    for i in range(n):
        indent = rng.choice([b"", b"", b"", b" ", b"\t ", b"\f"])
        header = rng.choice([b"id%d" % i, b"x->y %d" % i, b"a > b %d" % i, b""])
        body = b"".join(rng.choice([b"MKTAYIAK", b"m*k", b" ", b"\t", b"X"]) for _ in range(rng.randint(0, 12)))
        lines = [indent + b">" + header, *[body[k : k + 7] for k in range(0, len(body), 7)]]
        if rng.random() < 0.1:
            lines.append(b"  ")
        out.append(b"\n".join(lines) + b"\n")
    text = b"".join(out)
    return text.replace(b"\n", {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}[breaks])


@pytest.mark.parametrize("breaks", ["lf", "crlf", "cr"])
@pytest.mark.parametrize("seed", range(3))
def test_independent_count_equals_the_records_read(tmp_path, monkeypatch, breaks, seed):
    import random

    from foldatlas.inputs import count_file

    rng = random.Random(seed)
    text = _random_fasta(rng, 200, breaks)
    monkeypatch.setattr(fasta, "_BLOCK", rng.choice([3, 64, 1 << 20]))
    for name, data in (("r.fa", text), ("r.fa.gz", gzip.compress(text)), ("r.fa.zst", _compressed("zst", text))):
        (tmp_path / name).write_bytes(data)
        count = count_file(tmp_path / name, source=name)
        assert count.records == len(records(tmp_path / name)) == 200
        assert (count.text_bytes, count.text_sha256) == (len(text), hashlib.sha256(text).hexdigest())
        assert count.file_bytes == len(data)


def test_read_fasta_file_writes_the_count_and_refuses_a_lost_record(tmp_path, monkeypatch):
    import json

    from foldatlas import ingest
    from foldatlas.errors import AccountingError
    from foldatlas.inputs import count_file
    from foldatlas.settings import IngestSettings

    def read_part(path, part, *, source, source_index, count_out):
        return ingest.read_fasta_file(path, part, source=source, source_index=source_index, settings=IngestSettings.from_config({}), workers=1, count_out=count_out)

    path = write_fasta(tmp_path / "in.fa.gz", [(f"r{i}", SEQ) for i in range(50)], compress="gz")
    read_part(path, tmp_path / "p.parquet", source="in.fa.gz", source_index=2, count_out=tmp_path / "p.count.json")
    written = json.loads((tmp_path / "p.count.json").read_text())
    assert written == {**count_file(path, source_index=2, source="in.fa.gz").__dict__}
    assert written["records"] == 50 and written["format"] == "gzip"
    # a parser that silently drops a record: the part is refused, naming the file
    real, calls = ingest.validate_group, []

    def lossy(*args):  # drops the first record of the first group
        calls.append(1)
        return real(*args).slice(1 if len(calls) == 1 else 0)

    monkeypatch.setattr(ingest, "validate_group", lossy)
    with pytest.raises(AccountingError, match=r"in\.fa\.gz: the input holds 50 records \(independent count of its header lines\), its validated part has 49"):
        read_part(path, tmp_path / "q.parquet", source="in.fa.gz", source_index=0, count_out=tmp_path / "q.count.json")
    assert not (tmp_path / "q.parquet").exists() and not (tmp_path / "q.count.json").exists()
