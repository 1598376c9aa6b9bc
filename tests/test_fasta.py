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


def test_truncated_gzip_fails_with_position(tmp_path):
    data = gzip.compress(b"".join(b">r%d\n%s\n" % (i, SEQ.encode()) for i in range(2000)))
    path = tmp_path / "t.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"t\.fa\.gz: compressed stream is truncated after \d+ bytes"):
        records(path)


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
    with pytest.raises(InputFileError, match=r"c\.fa\.gz: (cannot decompress|compressed stream|expected a FASTA)"):
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
