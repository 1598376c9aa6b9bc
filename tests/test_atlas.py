"""assemble_atlas on hand-made fold outputs: structures are copied into the shards as
compressed bytes, and any disagreement between a chunk's archive and its predictions
stops the assembly with a message that names the file and the byte."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import foldatlas.atlas as atlas_module
from foldatlas.archive import archive_end, gzip_entry, read_member
from foldatlas.atlas import assemble_atlas
from foldatlas.errors import StaleOutputError
from foldatlas.fasta import sequence_checksum
from foldatlas.layout import AtlasOutputs, ChunkOutputs, Layout
from foldatlas.settings import AtlasSettings, FilterSettings
from foldatlas.tables import PREDICTIONS_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_table

AA = "ACDEFGHIKLMNPQRSTVWY"


def pdb(checksum: str, k: int) -> bytes:
    atoms = "".join(f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {i * 3.8:8.3f}{k:8.3f}   0.000  1.00 {50 + k:5.2f}           C\n" for i in range(k + 1))
    return f"REMARK checksum {checksum}\n{atoms}TER\nEND\n".encode()


def make_chunk(folder: Path, no: int, seqs: list[str], *, extra: bytes = b"") -> ChunkOutputs:
    """Predictions and archive of one chunk; every other sequence is high-confidence."""
    out = folder / f"chunk_{no:06d}"
    out.mkdir(parents=True)
    rows, archive = [], b""
    for k, seq in enumerate(seqs):
        c = sequence_checksum(seq.encode())
        entry = gzip_entry(f"{c}.pdb", pdb(c, k))
        conf = 0.9 if k % 2 == 0 else 0.5
        rows.append({
            "checksum": c, "length": len(seq), "status": "ok", "error": "", "plddt": conf, "plddt_ca": conf, "ptm": conf,
            "num_conf": 1, "max_pae": 5.0, "mean_pae": 2.0, "artefact": False, "residue_plddt": [conf] * len(seq), "pae": None,
            "batch_size": 1, "seconds": 0.5, "chunk_size": None, "num_recycles": 3, "device": "cpu", "lm_precision": "fp32", "tf32": False, "model_id": "test",
            "model_version": "none", "weights_checksum": "0" * 64, "member": f"{c}.pdb", "archive_offset": len(archive), "archive_length": len(entry),
        })  # fmt: skip
        archive += entry
    (out / "structures.tar.gz").write_bytes(archive + extra + archive_end())
    write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), out / "predictions.parquet", PREDICTIONS_SCHEMA)
    emb = pa.schema([("checksum", pa.string()), ("layer", pa.int16()), ("embedding", pa.list_(pa.float16(), 2))])
    pq.write_table(pa.table({"checksum": [r["checksum"] for r in rows], "layer": [0] * len(rows), "embedding": [[0.5, 1.0]] * len(rows)}, schema=emb), out / "embeddings.parquet")  # fmt: skip
    return ChunkOutputs(no, out / "predictions.parquet", out / "embeddings.parquet", out / "structures.tar.gz")


@pytest.fixture
def workspace(tmp_path):
    """Two chunks of five sequences, with their ingest tables."""
    seqs = ["".join(AA[(i * 7 + j) % 20] for j in range(20 + i)) for i in range(10)]
    chunks = [make_chunk(tmp_path / "fold", 0, seqs[:5]), make_chunk(tmp_path / "fold", 1, seqs[5:])]
    n, sums = len(seqs), [sequence_checksum(s.encode()) for s in seqs]
    write_table(pa.table({
        "source": ["in.fa"] * n, "source_index": [0] * n, "record_index": list(range(n)), "line": list(range(1, 2 * n, 2)),
        "id": [f"p{i}" for i in range(n)], "header": [f"p{i} test" for i in range(n)], "checksum": sums,
        "length": [len(s) for s in seqs], "n_nonstandard": [0] * n, "status": ["ok"] * n, "reason": [""] * n,
    }), tmp_path / "records.parquet", RECORDS_SCHEMA)  # fmt: skip
    write_table(pa.table({
        "checksum": sums, "sequence": seqs, "length": [len(s) for s in seqs], "n_nonstandard": [0] * n,
        "n_records": [1] * n, "est_seconds": [1.0] * n, "chunk": [0] * 5 + [1] * 5,
    }), tmp_path / "sequences.parquet", SEQUENCES_SCHEMA)  # fmt: skip
    return tmp_path, seqs, chunks


def run(tmp: Path, chunks: list[ChunkOutputs], **atlas) -> tuple[AtlasOutputs, dict]:  # type: ignore[no-untyped-def]
    out = Layout(tmp).atlas
    summary = assemble_atlas(records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", chunks=chunks, outputs=out,
                             filter=FilterSettings.from_config({}), atlas=AtlasSettings.from_config({"shard_size": 3, **atlas}))  # fmt: skip
    return out, summary


def test_shards_hold_the_chunk_entries_byte_for_byte(workspace, monkeypatch):
    tmp, seqs, chunks = workspace
    monkeypatch.setattr(atlas_module._IndexWriter, "BATCH", 4)  # several flushes of the streamed index
    out, summary = run(tmp, chunks, all_structures=True)
    index = pq.read_table(out.structures / "index.parquet").to_pylist()
    assert [r["collection"] for r in index].count("highconf") == 6 and [r["collection"] for r in index].count("all") == 10
    assert summary["counts"]["archived_high_confidence"] == 6
    source = {}
    for ch in chunks:
        data = ch.structures.read_bytes()
        for r in pq.read_table(ch.predictions).to_pylist():
            source[r["checksum"]] = data[r["archive_offset"] : r["archive_offset"] + r["archive_length"]]
    for r in index:
        shard = (out.root / r["archive"]).read_bytes()
        assert shard[r["offset"] : r["offset"] + r["length"]] == source[r["checksum"]]
        text = read_member(out.root / r["archive"], r["offset"], r["length"], expect=r["member"])
        assert text.startswith(f"REMARK checksum {r['checksum']}".encode()) and len(text) == r["size"]
    # each shard is an ordinary .tar.gz of at most shard_size members
    for shard in sorted(out.structures.glob("*.tar.gz")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
        assert 1 <= len(names) <= 3 and all(n.endswith(".pdb") for n in names)
    meta = pq.read_table(out.metadata).to_pylist()
    assert [m["high_confidence"] for m in meta] == [k % 2 == 0 for k in range(5)] * 2


def _break(chunks: list[ChunkOutputs], how: str) -> None:
    ch = chunks[1]
    preds = pq.read_table(ch.predictions).to_pylist()
    data = ch.structures.read_bytes()
    if how == "extra member":
        c = "f" * 32
        ch.structures.write_bytes(data[: -len(archive_end())] + gzip_entry(f"{c}.pdb", b"ATOM\n") + archive_end())
    elif how == "shifted range":
        preds[2]["archive_offset"] += 1
    elif how == "truncated":
        ch.structures.write_bytes(data[: preds[-1]["archive_offset"] + 10])
    elif how == "swapped names":
        preds[1]["member"], preds[3]["member"] = preds[3]["member"], preds[1]["member"]
    elif how == "garbage entry":
        a, n = preds[2]["archive_offset"], preds[2]["archive_length"]
        ch.structures.write_bytes(data[:a] + b"\x01" * n + data[a + n :])
    elif how == "no byte ranges":
        for r in preds:
            r["archive_offset"] = r["archive_length"] = None
    write_table(pa.Table.from_pylist(preds, schema=PREDICTIONS_SCHEMA), ch.predictions, PREDICTIONS_SCHEMA)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("extra member", r"chunk_000001/structures.tar.gz: \d+ bytes of tar entries after byte \d+ that no ok prediction names"),
        ("shifted range", r"chunk_000001/structures.tar.gz: expected the entry of \w+\.pdb at byte \d+, found the previous entry ending at \d+"),
        ("truncated", r"chunk_000001/structures.tar.gz: truncated: expected \d+ bytes at \d+"),
        ("swapped names", r"chunk_000001/structures.tar.gz: byte \d+: expected member '\w+\.pdb', found '\w+\.pdb'"),
        ("garbage entry", r"chunk_000001/structures.tar.gz: byte \d+: expected a gzip member, found other bytes"),
        ("no byte ranges", r"chunk_000001/predictions.parquet: ok predictions without an archive byte range .* fold this chunk again"),
    ],
)
def test_archive_that_disagrees_with_its_predictions_stops_the_assembly(workspace, how, message):
    tmp, _, chunks = workspace
    _break(chunks, how)
    with pytest.raises(StaleOutputError, match=message):
        run(tmp, chunks)
    root = tmp / "atlas"
    assert not (root / "metadata.parquet").exists() and not (root / "structures").exists()
    assert [p.name for p in root.iterdir()] == []  # no staging or scratch left behind
