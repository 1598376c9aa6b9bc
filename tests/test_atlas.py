"""assemble_atlas on hand-made fold outputs (ideal chains, written as the fold job writes
them): shards that every tar reader reads whole, structures copied byte for byte with
every member's gzip CRC checked, exact ESM Atlas bins, UniProt CRC64, Foldcomp round
trips, ModelCIF members, provenance; any disagreement between a chunk's archive and its
predictions stops the assembly with a message that names the file and the byte."""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import foldatlas.atlas as atlas_module
from conftest import REPO
from foldatlas.archive import archive_end, gzip_entry, read_member, structure_entries
from foldatlas.atlas import ATLAS_BINS, assemble_atlas, assemble_bucket, bucket_metadata, confidence_bin, crc64_hex, finish_atlas
from foldatlas.atomic import write_json
from foldatlas.buckets import WHOLE, bucket_names
from foldatlas.errors import StaleOutputError
from foldatlas.fasta import sequence_checksum
from foldatlas.layout import AtlasOutputs, ChunkOutputs, Layout
from foldatlas.prediction import Prediction
from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings
from foldatlas.structures import UNKNOWN, UNKNOWN_ATOMS
from foldatlas.tables import INDEX_SCHEMA, METADATA_SCHEMA, PREDICTIONS_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_table
from ideal import GLY, ideal_backbone

AA = "ACDEFGHIKLMNPQRSTVWY"


def prediction(checksum: str, L: int, conf: float, *, gap: bool = False) -> Prediction:
    """A folded prediction with an ideal glycine helix (residue 3 unknown, with its backbone;
    ``gap``: residues 5-7 without atoms, as foldatlas 0.2 wrote X)."""
    aatype = np.full(L, GLY)
    aatype[3] = UNKNOWN
    pos, mask = np.zeros((L, 37, 3), np.float32), np.zeros((L, 37), bool)
    pos[:, list(UNKNOWN_ATOMS)] = ideal_backbone(L)
    mask[:, list(UNKNOWN_ATOMS)] = True
    if gap:
        mask[5:8] = False
    return Prediction(checksum, L, plddt=conf, plddt_ca=conf, ptm=conf, aatype=aatype, positions=pos, atom_mask=mask, atom_plddt=np.full((L, 37), conf, np.float32))


def make_chunk(folder: Path, no: int, seqs: list[str], *, extra: bytes = b"", formats: tuple[str, ...] = ("pdb",), gap: int | None = None) -> ChunkOutputs:
    """Predictions and archive of one chunk, as fold_chunk writes them; every other sequence
    is high-confidence."""
    out = folder / f"chunk_{no:06d}"
    out.mkdir(parents=True, exist_ok=True)  # a store reserves its chunk folders when it plans
    (out / "index.parquet").unlink(missing_ok=True)  # as a fold job removes its chunk's seal before it writes
    rows, archive = [], b""
    for k, seq in enumerate(seqs):
        c = sequence_checksum(seq.encode())
        conf = 0.9 if k % 2 == 0 else 0.5
        block = structure_entries(prediction(c, len(seq), conf, gap=k == gap), formats=formats, remarks=[f"checksum {c}"], context={"model_id": "test", "model_version": "none"})
        rows.append({
            "checksum": c, "length": len(seq), "status": "ok", "error": "", "plddt": conf, "plddt_ca": conf, "ptm": conf,
            "num_conf": 1, "max_pae": 5.0, "mean_pae": 2.0 + k, "artefact": False, "residue_plddt": [conf] * len(seq), "pae": None,
            "batch_size": 1, "seconds": 0.5, "chunk_size": None, "num_recycles": 4, "device": "cpu", "lm_precision": "fp32", "tf32": False, "model_id": "test",
            "model_version": "none", "weights_checksum": "0" * 64, "member": f"{c}.pdb.gz", "archive_offset": len(archive), "archive_length": len(block),
        })  # fmt: skip
        archive += block
    (out / "structures.tar").write_bytes(archive + extra + archive_end())
    write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), out / "predictions.parquet", PREDICTIONS_SCHEMA)
    emb = pa.schema([("checksum", pa.string()), ("layer", pa.int16()), ("embedding", pa.list_(pa.float16(), 2))])
    vecs = [[1.0, 0.5 * k] for k in range(len(rows))]
    pq.write_table(pa.table({"checksum": [r["checksum"] for r in rows], "layer": [0] * len(rows), "embedding": vecs}, schema=emb), out / "embeddings.parquet")
    return ChunkOutputs(no, out / "predictions.parquet", out / "embeddings.parquet", out / "structures.tar")


def write_ingest(tmp: Path, seqs: list[str], chunk_of: list[int]) -> None:
    n, sums = len(seqs), [sequence_checksum(s.encode()) for s in seqs]
    write_table(pa.table({
        "source": ["in.fa"] * n, "source_index": [0] * n, "record_index": list(range(n)), "line": list(range(1, 2 * n, 2)),
        "id": [f"p{i}" for i in range(n)], "header": [f"p{i} test" for i in range(n)], "checksum": sums,
        "length": [len(s) for s in seqs], "n_nonstandard": [0] * n, "status": ["ok"] * n, "reason": [""] * n,
    }), tmp / "records.parquet", RECORDS_SCHEMA)  # fmt: skip
    write_table(pa.table({
        "checksum": sums, "sequence": seqs, "length": [len(s) for s in seqs], "n_nonstandard": [0] * n,
        "n_records": [1] * n, "est_seconds": [1.0] * n, "chunk": chunk_of, "release": ["r0001"] * n,
        "representative": pa.nulls(n, pa.string()), "identity": pa.nulls(n, pa.float64()), "coverage": pa.nulls(n, pa.float64()),
    }), tmp / "sequences.parquet", SEQUENCES_SCHEMA)  # fmt: skip
    count = {"source_index": 0, "source": "in.fa", "format": "plain", "file_bytes": 1, "text_bytes": 1, "records": n, "text_sha256": "ab" * 32}
    (tmp / "inputs.json").write_text(json.dumps({"files": [count]}))


SEQS = ["".join(AA[(i * 7 + j) % 20] for j in range(20 + i)) for i in range(10)]


@pytest.fixture
def workspace(tmp_path):
    """Two chunks of five sequences, with their ingest tables."""
    chunks = [make_chunk(tmp_path / "fold", 0, SEQS[:5]), make_chunk(tmp_path / "fold", 1, SEQS[5:])]
    write_ingest(tmp_path, SEQS, [0] * 5 + [1] * 5)
    return tmp_path, SEQS, chunks


def run(tmp: Path, chunks: list[ChunkOutputs], formats: tuple[str, ...] = ("pdb",), config: dict | None = None, root: Path | None = None, **atlas) -> tuple[AtlasOutputs, dict]:  # type: ignore[no-untyped-def]
    out = Layout(root or tmp).atlas
    summary = assemble_atlas(records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", chunks=chunks, outputs=out,
                             filter=FilterSettings.from_config({}), atlas=AtlasSettings.from_config({"shard_size": 3, **atlas}),
                             structures=StructureSettings.from_config({"formats": list(formats)}), config=config, inputs=tmp / "inputs.json")  # fmt: skip
    return out, summary


def test_shards_hold_the_chunk_entries_byte_for_byte(workspace, monkeypatch):
    tmp, seqs, chunks = workspace
    monkeypatch.setattr(atlas_module.IndexWriter, "BATCH", 4)  # several flushes of the streamed index
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
        assert shard[r["data_offset"] - 512 : r["data_offset"] - 512 + len(source[r["checksum"]])] == source[r["checksum"]]
        text = read_member(out.root / r["archive"], r["data_offset"], r["data_length"], expect=r["member"])
        assert text.startswith(f"REMARK 250 checksum {r['checksum']}".encode()) and len(text) == r["pdb_size"]
    meta = pq.read_table(out.metadata).to_pylist()
    assert [m["high_confidence"] for m in meta] == [k % 2 == 0 for k in range(5)] * 2


def test_without_copies_the_index_points_into_the_fold_archives(workspace):
    """atlas.copy_structures: false after a run with copies: the shards go, and every
    index entry (both collections) names the fold job's own archive, from the atlas
    folder, and the byte range of the same member the copy held; the metadata points
    there too, the accounting reads them back, and copy_members makes a shard of them
    that is the copy's shard byte for byte."""
    import os

    from foldatlas.archive import copy_members

    tmp, _, chunks = workspace
    out, _ = run(tmp, chunks, all_structures=True, foldcomp=True)
    copied = {(r["checksum"], r["collection"]): r for r in pq.read_table(out.structures / "index.parquet").to_pylist()}
    texts = {k: read_member(out.root / c["archive"], c["data_offset"], c["data_length"]) for k, c in copied.items()}
    first = sorted(out.structures.glob("*/highconf_*.tar"))[0].read_bytes()
    out, summary = run(tmp, chunks, all_structures=True, foldcomp=True, copy_structures=False)
    assert not list(out.structures.rglob("*.tar")), "no shards without copies"
    assert summary["counts"]["archived_high_confidence"] == 6 and summary["structures"]["foldcomp"]["written"] == 6
    index = pq.read_table(out.structures / "index.parquet").to_pylist()
    assert {(r["checksum"], r["collection"]) for r in index} == set(copied)
    fold_archives = {os.path.relpath(ch.structures, out.root) for ch in chunks}
    for r in index:
        assert r["archive"] in fold_archives and r["archive"].startswith("../")
        assert (r["member"], r["data_length"], r["pdb_size"]) == tuple(copied[r["checksum"], r["collection"]][k] for k in ("member", "data_length", "pdb_size"))
        assert read_member(out.root / r["archive"], r["data_offset"], r["data_length"], expect=r["member"]) == texts[r["checksum"], r["collection"]]
    meta = pq.read_table(out.metadata, columns=["archive", "high_confidence"]).to_pylist()
    assert {m["archive"] for m in meta if m["high_confidence"]} <= fold_archives
    assert _accounting(tmp, out)["ok"] is True
    # the first shard of the copy, made again from the index without copies
    rows = [(r["archive"], r["member"], r["data_offset"], r["data_length"]) for r in index if r["collection"] == "highconf"][:3]
    assert copy_members(iter(rows), out.root, tmp / "again.tar") == 3
    assert subprocess.run(["tar", "tf", str(tmp / "again.tar")], capture_output=True, text=True, check=True).stdout.split() == [r[1] for r in rows]
    assert (tmp / "again.tar").read_bytes() == first
    # an output root reached through a symlink: the paths hold where open() resolves them
    (tmp / "elsewhere/a/b").mkdir(parents=True)
    (tmp / "link").symlink_to(tmp / "elsewhere/a/b")
    linked, _ = run(tmp, chunks, root=tmp / "link", copy_structures=False)
    for r in pq.read_table(linked.structures / "index.parquet").to_pylist():
        assert read_member(linked.root / r["archive"], r["data_offset"], r["data_length"], expect=r["member"]) == texts[r["checksum"], r["collection"]]


def test_every_tar_reader_sees_every_member(workspace):
    tmp, _, chunks = workspace
    out, _ = run(tmp, chunks, all_structures=True)
    index = pq.read_table(out.structures / "index.parquet").to_pylist()
    shards = sorted(out.structures.glob("*/*.tar"))
    assert len(shards) == 6  # 2 high-confidence (3 + 3), 4 of all (3 + 3 + 3 + 1)
    for shard in [*shards, *(ch.structures for ch in chunks)]:
        expected = sorted(r["member"] for r in index if out.root / r["archive"] == shard) if shard.parent.parent == out.structures else sorted(
            r["member"] for ch in chunks if ch.structures == shard for r in pq.read_table(ch.predictions).to_pylist())
        gnu = subprocess.run(["tar", "tf", str(shard)], capture_output=True, text=True, check=True).stdout.split()
        with tarfile.open(shard, "r:") as tar:
            seek = [m.name for m in tar]
        with open(shard, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:  # a stream: no seeking back
            stream = {m.name: gzip.decompress(tar.extractfile(m).read()) for m in tar}  # type: ignore[union-attr]
        assert sorted(gnu) == sorted(seek) == sorted(stream) == expected, shard
        assert all(t.startswith(b"REMARK 250 checksum") for t in stream.values())
    for r in index:  # and by the index's byte ranges: one seek, one read
        assert read_member(out.root / r["archive"], r["data_offset"], r["data_length"], expect=r["member"]).endswith(b"END\n")


def _break(chunks: list[ChunkOutputs], how: str) -> None:
    ch = chunks[1]
    preds = pq.read_table(ch.predictions).to_pylist()
    data = bytearray(ch.structures.read_bytes())
    a, n = preds[2]["archive_offset"], preds[2]["archive_length"]
    if how == "extra member":
        c = "f" * 32
        data = data[: -len(archive_end())] + gzip_entry(f"{c}.pdb.gz", b"ATOM\n") + archive_end()
    elif how == "shifted range":
        preds[2]["archive_offset"] += 1
    elif how == "truncated":
        data = data[: preds[-1]["archive_offset"] + 10]
    elif how == "swapped names":
        preds[1]["member"], preds[3]["member"] = preds[3]["member"], preds[1]["member"]
        preds[1]["checksum"], preds[3]["checksum"] = preds[3]["checksum"], preds[1]["checksum"]
    elif how == "garbage entry":
        data[a : a + n] = b"\x01" * n
    elif how == "bit flip in a member":
        data[a + 512 + n // 4] ^= 0x10  # inside the gzip data, past its header
    elif how == "bit flip in a header":
        data[a + 20] ^= 0x01  # the member's name: the header checksum no longer holds
    elif how == "no byte ranges":
        for r in preds:
            r["archive_offset"] = r["archive_length"] = None
    ch.structures.write_bytes(bytes(data))
    write_table(pa.Table.from_pylist(preds, schema=PREDICTIONS_SCHEMA), ch.predictions, PREDICTIONS_SCHEMA)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("extra member", r"chunk_000001/structures.tar: expected only the end-of-archive marker \(zero blocks\) after byte \d+, found \d+ bytes"),
        ("shifted range", r"chunk_000001/structures.tar: expected the entries of \w+\.pdb\.gz at byte \d+, found the previous entry ending at \d+"),
        ("truncated", r"chunk_000001/structures.tar: truncated: expected \d+ bytes at \d+"),
        ("swapped names", r"chunk_000001/structures.tar: byte \d+ byte 0: expected member '\w+\.pdb\.gz', found '\w+\.pdb\.gz'"),
        ("garbage entry", r"chunk_000001/structures.tar: byte \d+ byte 0: expected a tar header, found other bytes"),
        ("bit flip in a member", r"chunk_000001/structures.tar: byte \d+ byte 512 \(\w+\.pdb\.gz\): expected a gzip file whose CRC checks"),
        ("bit flip in a header", r"chunk_000001/structures.tar: byte \d+ byte 0: expected a tar header, found other bytes \(bad checksum\)"),
        ("no byte ranges", r"chunk_000001/predictions.parquet: ok predictions without an archive byte range .* fold this chunk again"),
    ],
)
def test_archive_that_disagrees_with_its_predictions_stops_the_assembly(workspace, how, message):
    tmp, _, chunks = workspace
    _break(chunks, how)
    with pytest.raises(StaleOutputError, match=message):
        run(tmp, chunks)
    root = tmp / "atlas"
    assert not (root / "metadata.parquet").exists() and not (root / "structures" / WHOLE).exists()
    # no staging or scratch left behind: nothing but the empty structures folder
    assert [str(p.relative_to(root)) for p in root.rglob("*")] == ["structures"] and not any((root / "structures").iterdir())


def test_every_member_is_checked_not_a_sample(workspace):
    """A flipped bit in any one structure of the chunk stops the assembly, wherever it is."""
    tmp, _, chunks = workspace
    original = chunks[0].structures.read_bytes()
    for r in pq.read_table(chunks[0].predictions).to_pylist():
        data = bytearray(original)
        data[r["archive_offset"] + 512 + r["archive_length"] // 3] ^= 0x04
        chunks[0].structures.write_bytes(bytes(data))
        with pytest.raises(StaleOutputError, match="CRC"):
            run(tmp, chunks)
    chunks[0].structures.write_bytes(original)
    run(tmp, chunks)


ATLAS_V0_BINS = (REPO / "tests/data/esm_atlas_v0_bins.txt").read_text().split()


def test_bin_names_and_edges_are_the_esm_atlas_ones():
    assert len(ATLAS_BINS) == len(set(ATLAS_BINS)) == 49
    assert set(ATLAS_V0_BINS) <= set(ATLAS_BINS) and len(ATLAS_V0_BINS) == 43  # the bins of Atlas v0 that hold structures
    assert confidence_bin(0.0, 0.0) == "tm_0_.40_plddt_0_.40"
    assert confidence_bin(1.0, 1.0) == confidence_bin(0.9, 0.95) == "tm_.90_1_plddt_.90_1"
    assert confidence_bin(0.3999, 0.4) == "tm_0_.40_plddt_.40_.50"
    assert confidence_bin(0.8999, 0.65) == "tm_.80_.90_plddt_.60_.70"
    assert confidence_bin(None, 0.5) is None and confidence_bin(float("nan"), 0.5) is None
    values = np.linspace(0, 1, 101)
    assert {confidence_bin(t, p) for t in values for p in values} == set(ATLAS_BINS)


def test_crc64_is_uniprots():
    from Bio.SeqUtils.CheckSum import crc64

    # UniProtKB SQ lines: P60904 (DNJC5_MOUSE), P0A186 (NDOA_PSEU8)
    p60904 = ("MADQRQRSLSTSGESLYHVLGLDKNATSDDIKKSYRKLALKYHPDKNPDNPEAADKFKEINNAHAILTDATKRNIYDKYGSLGLYVAEQFGEENVNTYFVLSSWWAKALFVVCGLLTCCY"
              "CCCCLCCCFNCCCGKCKPKAPEGEETEFYVSPEDLEAQLQSDEREATDTPIVIQPASATETTQLTADSHPSYHTDGFN")  # fmt: skip
    p0a186 = "MTVKWIEAVALSDILEGDVLGVTVEGKELALYEVEGEIYATDNLCTHGSARMSDGYLEGREIECPLHQGRFDVCTGKALCAPVTQNIKTYPVKIENLRVMIDLS"
    assert crc64_hex([p60904, p0a186]) == ["52F98261FBAD978F", "475625DCC3EDCD41"]
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list(AA + "XBZUO"), int(n))) for n in rng.integers(1, 600, 300)]
    assert crc64_hex(seqs) == [crc64(s).removeprefix("CRC-") for s in seqs]


def test_metadata_has_crc64_mean_pae_and_provenance(workspace):
    tmp, seqs, chunks = workspace
    out, _ = run(tmp, chunks, config={"filter": {"min_plddt": 0.7}, "atlas": {"shard_size": 3}})
    meta = pq.read_table(out.metadata)
    assert meta.schema.equals(METADATA_SCHEMA, check_metadata=False)
    rows = meta.to_pylist()
    assert [r["crc64"] for r in rows] == crc64_hex(seqs)
    assert [r["mean_pae"] for r in rows] == [2.0 + k for k in range(5)] * 2
    for path in (out.metadata, out.plddt, out.embeddings, out.index):
        kv = json.loads(pq.read_schema(out.part(path, WHOLE)).metadata[b"foldatlas"])
        assert kv["model_ids"] == ["test"] and kv["versions"]["pyarrow"] == pa.__version__ and kv["foldatlas"], path
    assert pq.read_schema(out.part(out.index, WHOLE)).equals(INDEX_SCHEMA, check_metadata=False)
    import yaml

    assert yaml.safe_load(out.config.read_text()) == {"filter": {"min_plddt": 0.7}, "atlas": {"shard_size": 3}}


def test_embeddings_are_vectors_for_duckdb(workspace):
    import duckdb

    tmp, _, chunks = workspace
    out, _ = run(tmp, chunks)
    path = str(out.embeddings)
    sims = duckdb.sql(f"SELECT list_cosine_similarity(a.embedding, b.embedding) FROM '{path}' a, '{path}' b WHERE a.checksum < b.checksum").fetchall()
    assert len(sims) == 45 and all(0 < s <= 1.0001 for (s,) in sims)
    cast = duckdb.sql(f"SELECT array_cosine_similarity(embedding::FLOAT[2], embedding::FLOAT[2]) FROM '{path}' LIMIT 1").fetchall()
    assert cast[0][0] == pytest.approx(1.0)


def test_foldcomp_keeps_only_structures_that_survive_the_round_trip(tmp_path):
    import foldcomp

    chunks = [make_chunk(tmp_path / "fold", 0, SEQS[:6], gap=2)]  # the gapped structure is high-confidence
    write_ingest(tmp_path, SEQS[:6], [0] * 6)
    out, summary = run(tmp_path, chunks, foldcomp=True, foldcomp_check_fraction=1.0)
    index = [r for r in pq.read_table(out.index).to_pylist() if r["collection"] == "highconf"]
    gapped = sequence_checksum(SEQS[2].encode())
    assert summary["structures"]["foldcomp"] | {"max_rmsd": None} == {
        "enabled": True, "check_fraction": 1.0, "written": 2, "checked": 3, "left_out": 1, "max_rmsd": None, "tolerance": 0.5}  # fmt: skip
    for r in index:
        if r["checksum"] == gapped:
            assert not r["in_foldcomp"] and "chain gap" in r["foldcomp_reason"]
        else:
            assert r["in_foldcomp"] and r["foldcomp_rmsd"] < 0.05 and r["foldcomp_reason"] is None
    with foldcomp.open(str(out.shards(WHOLE) / "foldcomp/highconf")) as db:
        names = {name: pdb for name, pdb in db}
    assert sorted(names) == sorted(r["checksum"] for r in index if r["in_foldcomp"])
    for name, pdb in names.items():
        assert sum(line.startswith("ATOM") and line[12:16].strip() == "CA" for line in pdb.splitlines()) == len(SEQS[[sequence_checksum(s.encode()) for s in SEQS].index(name)])


def test_modelcif_members_travel_with_their_pdb(tmp_path):
    import gemmi

    chunks = [make_chunk(tmp_path / "fold", 0, SEQS[:4], formats=("pdb", "cif"))]
    write_ingest(tmp_path, SEQS[:4], [0] * 4)
    with pytest.raises(StaleOutputError, match=r"bytes after the entries of \w+ .*fold this chunk again if structures.formats changed"):
        run(tmp_path, chunks)  # configured for PDB only
    out, _ = run(tmp_path, chunks, formats=("pdb", "cif"))
    index = pq.read_table(out.index).to_pylist()
    assert len(index) == 2
    for r in index:
        cif = read_member(out.root / r["archive"], r["cif_offset"], r["cif_length"], expect=r["cif_member"])
        st = gemmi.make_structure_from_block(gemmi.cif.read_string(cif.decode())[0])
        pdb = gemmi.read_pdb_string(read_member(out.root / r["archive"], r["data_offset"], r["data_length"]).decode())
        assert r["cif_member"] == f"{r['checksum']}.cif.gz" and st[0].count_atom_sites() == pdb[0].count_atom_sites()
        assert [res.name for res in st[0][0]][3] == "UNK"


@pytest.mark.parametrize("formats", [["cif"], ["pdb", "pdb"], ["cif", "pdb"], ["pdb", "mmtf"], []])
def test_structure_formats_start_with_pdb(formats):
    from foldatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="structures.formats"):
        StructureSettings.from_config({"formats": formats})
    assert StructureSettings.from_config({}).formats == ("pdb",)


@pytest.mark.parametrize(
    "chunk_of, message",
    [
        ([0] * 4 + [1] * 6, r"chunk_000000/predictions.parquet: sequence \w+ is planned in chunk 1 \(2 such sequences in all\)"),
        ([0] * 6 + [1] * 4, r"chunk_000000/predictions.parquet: sequence \w+ is planned in this chunk but has no prediction here"),
        ([0] * 5 + [2] * 5, r"chunk_000001/predictions.parquet: sequence \w+ is planned in chunk 2"),
    ],
)
def test_fold_outputs_made_for_other_chunk_content_stop_the_assembly(workspace, chunk_of, message):
    """The plan moved sequences between chunks but the fold outputs are those of the old
    plan (what a fold job kept by `ancient` gives when Snakemake's params trigger is off):
    the assembly stops, naming the chunk, instead of writing a stale atlas."""
    tmp, _, chunks = workspace
    write_ingest(tmp, SEQS, chunk_of)
    with pytest.raises(StaleOutputError, match=message + r".*made for other chunk content.*delete this chunk's fold folder"):
        run(tmp, chunks)
    assert not Layout(tmp).atlas.metadata.exists()


def test_fold_outputs_made_under_other_settings_stop_the_assembly(workspace):
    """Each chunk records the settings it was folded under (``OUTPUTS_KEY``); an assembly
    for other settings (a fold job not rerun after num_recycles changed) stops, naming
    the chunk and what differs; outputs of an earlier foldatlas record nothing."""
    from foldatlas.config import validate_config
    from foldatlas.settings import fold_outputs_key
    from foldatlas.tables import OUTPUTS_KEY

    tmp, _, chunks = workspace
    config = validate_config({"fold": {"model": "tiny"}})
    key = fold_outputs_key(config)
    args = dict(records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", chunks=chunks, outputs=Layout(tmp).atlas,
                filter=FilterSettings.from_config({}), atlas=AtlasSettings.from_config({}), inputs=tmp / "inputs.json")  # fmt: skip
    with pytest.raises(StaleOutputError, match=r"chunk_000000/predictions.parquet: records no fold settings \(folded by an earlier foldatlas\)"):
        assemble_atlas(**args, outputs_key=key)
    other = fold_outputs_key(validate_config({"fold": {"model": "tiny", "num_recycles": 2}}))
    for ch, k in zip(chunks, (key, other)):
        t = pq.read_table(ch.predictions)
        pq.write_table(t.replace_schema_metadata({**(t.schema.metadata or {}), OUTPUTS_KEY: k.encode()}), ch.predictions)
    with pytest.raises(StaleOutputError, match=rf"chunk_000001/predictions.parquet: folded under other settings than this run's \(fold.num_recycles: 2 -> {config['fold']['num_recycles']}\)"):
        assemble_atlas(**args, outputs_key=key)
    assert not Layout(tmp).atlas.metadata.exists()
    pq.write_table(pq.read_table(chunks[1].predictions).replace_schema_metadata({OUTPUTS_KEY: key.encode()}), chunks[1].predictions)
    assemble_atlas(**args, outputs_key=key)
    assert Layout(tmp).atlas.metadata.exists()


def test_chunks_folded_by_two_models_stop_the_assembly(workspace):
    """Same model id and revision, other weights (by content) in one chunk: refused."""
    tmp, _, chunks = workspace
    t = pq.read_table(chunks[1].predictions)
    t = t.set_column(t.schema.get_field_index("weights_checksum"), "weights_checksum", pa.array(["1" * 64] * t.num_rows))
    pq.write_table(t, chunks[1].predictions)
    with pytest.raises(StaleOutputError, match=r"chunk_000001/predictions.parquet: folded by another model than .*chunk_000000/predictions.parquet .*an atlas never mixes models"):
        run(tmp, chunks)


def split_assembly(tmp: Path, chunks: list[ChunkOutputs], digits: int, out: Path, formats: tuple[str, ...] = ("pdb",), **atlas) -> tuple[AtlasOutputs, dict]:  # type: ignore[no-untyped-def]
    """The atlas as the workflow's jobs make it: assemble_bucket for every bucket (its
    sequences and chunks picked as foldatlas.store.bucket_sources picks them), then
    bucket_metadata for every bucket, then finish_atlas; ``atlas``: settings of the atlas section."""
    atlas_out, parts = Layout(out).atlas, out / "parts"
    seqs = pq.read_table(tmp / "sequences.parquet")
    settings = {"filter": FilterSettings.from_config({}), "atlas": AtlasSettings.from_config({"shard_size": 3, **atlas})}
    preds = {}
    for b in bucket_names(digits):
        mine = seqs.filter(pc.equal(pc.utf8_slice_codeunits(pc.coalesce(seqs["representative"], seqs["checksum"]), 0, digits), b)) if digits else seqs
        write_table(mine, out / f"{b}.sequences.parquet", SEQUENCES_SCHEMA)
        wanted = set(pc.coalesce(mine["representative"], mine["checksum"]).to_pylist())
        held = [(ch, wanted & set(pq.read_table(ch.predictions)["checksum"].to_pylist())) for ch in chunks]
        mine_chunks = [ChunkOutputs(ch.chunk, ch.predictions, ch.embeddings, ch.structures, only) for ch, only in held if only]
        preds[b] = parts / f"{b}.predictions.parquet"
        part = assemble_bucket(bucket=b, sequences=out / f"{b}.sequences.parquet", chunks=mine_chunks, outputs=atlas_out, predictions=preds[b],
                               scratch_dir=out / "scratch", template=chunks[0], structures=StructureSettings.from_config({"formats": list(formats)}), **settings)  # fmt: skip
        write_json(parts / f"{b}.json", part)
    for b in bucket_names(digits):
        bucket_metadata(bucket=b, records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", inputs=tmp / "inputs.json", outputs=atlas_out,
                        predictions=preds, part=parts / f"{b}.json", atlas=settings["atlas"], scratch_dir=out / "scratch")  # fmt: skip
    summary = finish_atlas(atlas_out, parts={b: parts / f"{b}.json" for b in bucket_names(digits)}, records=tmp / "records.parquet",
                           sequences=tmp / "sequences.parquet", inputs=tmp / "inputs.json", filter=settings["filter"])  # fmt: skip
    return atlas_out, summary


def with_members(tmp: Path) -> dict[str, str]:
    """The workspace's ingest tables plus one member per folded sequence, each resolved to a
    representative in another 1-digit bucket (a member's row points at its representative's
    chunk, as plan_chunks writes it); one more record has no checksum. Returns member ->
    representative."""
    sums = [sequence_checksum(s.encode()) for s in SEQS]
    members, k = {}, 0
    while len(members) < len(SEQS):
        seq = "M" + "".join(AA[(k * 3 + j) % 20] for j in range(30))
        c, rep = sequence_checksum(seq.encode()), sums[len(members)]
        k += 1
        if c[0] != rep[0]:
            members[seq] = rep
    n = len(SEQS) + len(members)
    all_seqs = [*SEQS, *members]
    write_ingest(tmp, all_seqs, [0] * 5 + [1] * 5 + [0 if sums.index(r) < 5 else 1 for r in members.values()])
    seqs = pq.read_table(tmp / "sequences.parquet").to_pylist()
    for row, seq in zip(seqs, all_seqs):
        if seq in members:
            row.update(representative=members[seq], identity=0.95, coverage=1.0)
    write_table(pa.Table.from_pylist(seqs, schema=SEQUENCES_SCHEMA), tmp / "sequences.parquet", SEQUENCES_SCHEMA)
    recs = pq.read_table(tmp / "records.parquet").to_pylist()
    recs.append({**recs[-1], "record_index": n, "id": "empty", "header": "empty", "checksum": None, "length": 0, "status": "empty", "reason": "no residues"})
    write_table(pa.Table.from_pylist(recs, schema=RECORDS_SCHEMA), tmp / "records.parquet", RECORDS_SCHEMA)
    count = json.loads((tmp / "inputs.json").read_text())
    count["files"][0]["records"] = n + 1
    (tmp / "inputs.json").write_text(json.dumps(count))
    return {sequence_checksum(s.encode()): r for s, r in members.items()}


def table_rows(atlas: AtlasOutputs) -> dict[str, list]:
    """Every table's rows in key order, without what names a bucket's folder (archive paths)."""
    import duckdb

    q = {"metadata": (atlas.metadata, "source_index, record_index", "EXCLUDE (archive, rep_archive)"), "plddt": (atlas.plddt, "checksum", ""),
         "embeddings": (atlas.embeddings, "checksum, layer", ""), "index": (atlas.index, "collection, checksum", "EXCLUDE (archive, data_offset)")}  # fmt: skip
    return {k: duckdb.sql(f"SELECT * {skip} FROM '{path}' ORDER BY {order}").fetchall() for k, (path, order, skip) in q.items()}


def test_an_atlas_assembled_one_bucket_a_job_holds_the_rows_of_one_job(workspace):
    """16 bucket jobs (most of them empty) write the same rows as the one-call assembly,
    and a member whose representative is in another bucket points at that bucket's shard,
    where its structure is; the summary's counts are the same."""
    tmp, _, chunks = workspace
    members = with_members(tmp)
    whole, s_whole = run(tmp, chunks)
    split, s_split = split_assembly(tmp, chunks, 1, tmp / "split")
    assert s_split["counts"] == s_whole["counts"] and s_whole["counts"]["represented"] == len(members) and s_split["buckets"] == bucket_names(1)
    a, b = table_rows(whole), table_rows(split)
    assert {k: len(v) for k, v in a.items()} == {"metadata": 21, "plddt": 10, "embeddings": 10, "index": 6}
    assert a == b
    assert sorted(p.name for p in split.metadata.iterdir()) == [f"{d}.parquet" for d in "0123456789abcdef"]
    rows = pq.read_table(split.metadata).to_pylist()
    index = {r["checksum"]: r for r in pq.read_table(split.index).to_pylist()}
    for r in rows:
        if r["checksum"] in members:
            rep = members[r["checksum"]]
            assert r["status"] == "represented" and r["representative"] == rep and r["rep_status"] == "folded"
            assert r["checksum"][0] != rep[0]
            if r["rep_high_confidence"]:
                assert r["rep_archive"] == index[rep]["archive"] and r["rep_archive"].startswith(f"structures/{rep[0]}/")
                entry = index[rep]
                data = read_member(split.root / entry["archive"], entry["data_offset"], entry["data_length"], expect=f"{rep}.pdb.gz")
                assert f"checksum {rep}".encode() in data
            else:
                assert r["rep_archive"] is None
    assert next(r for r in rows if r["status"] == "empty")["checksum"] is None  # in the first bucket's file
    assert pq.read_table(split.part(split.metadata, "0")).filter(pc.equal(pq.read_table(split.part(split.metadata, "0"))["status"], "empty")).num_rows == 1
    # an empty bucket's embeddings file has the schema of the others: one dataset
    assert len({pq.read_schema(f).remove_metadata() for f in split.embeddings.iterdir()}) == 1
    # every file names the model, also an empty bucket's and one whose records are all members
    for table in split.tables:
        for f in table.iterdir():
            assert json.loads(pq.read_schema(f).metadata[b"foldatlas"])["model_ids"] == ["test"], f


def test_finishing_removes_what_another_split_or_an_older_layout_left(workspace):
    """The finish leaves only this atlas's buckets in its folders: after a split atlas, a
    whole one (and after foldatlas 0.7's single files and top-level shards) is read alone."""
    tmp, _, chunks = workspace
    old = Layout(tmp / "old").atlas
    old.structures.mkdir(parents=True)
    for f in (old.metadata, old.plddt, old.index, old.structures / "highconf_000000.tar"):
        f.write_bytes(b"0.7")
    split_assembly(tmp, chunks, 1, tmp / "old")
    split, _ = split_assembly(tmp, chunks, 1, tmp / "old")  # again over itself: nothing stale
    assert sorted(p.name for p in split.structures.iterdir()) == sorted([*"0123456789abcdef", "index.parquet"])
    (split.metadata / ".all.parquet.tmp-1").write_bytes(b"a killed write")
    out = Layout(tmp / "old").atlas
    assemble_atlas(records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", chunks=chunks, outputs=out, filter=FilterSettings.from_config({}),
                   atlas=AtlasSettings.from_config({"shard_size": 3}), inputs=tmp / "inputs.json")  # fmt: skip
    for table in out.tables:
        assert [p.name for p in table.iterdir()] == ["all.parquet"], table
    assert sorted(p.name for p in out.structures.iterdir()) == ["all", "index.parquet"]
    assert table_rows(out) == table_rows(split)


def test_a_bucket_job_takes_away_the_finished_marks(workspace):
    """While a bucket's files change, the folders may hold buckets of two runs: a bucket
    job removes summary.json and accounting.json first, so that no reader takes the
    atlas as finished until the finish (and the accounting) ran again."""
    tmp, _, chunks = workspace
    atlas, _ = split_assembly(tmp, chunks, 1, tmp / "a")
    atlas.accounting.write_text('{"ok": true}')
    assert atlas.summary.exists()
    write_table(SEQUENCES_SCHEMA.empty_table(), tmp / "none.parquet", SEQUENCES_SCHEMA)  # an empty bucket
    assemble_bucket(bucket="00", sequences=tmp / "none.parquet", chunks=[], outputs=atlas, predictions=tmp / "00.predictions.parquet",
                    filter=FilterSettings.from_config({}), atlas=AtlasSettings.from_config({}), scratch_dir=tmp / "scratch", template=chunks[0])  # fmt: skip
    assert not atlas.summary.exists() and not atlas.accounting.exists()
    assert (atlas.plddt / "00.parquet").exists() and (atlas.plddt / "0.parquet").exists()  # two splits, until the finish prunes


def _accounting(tmp: Path, atlas: AtlasOutputs, report: str = "accounting.json") -> dict:
    from foldatlas.accounting import check_accounting

    return check_accounting(records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", outputs=atlas, report=tmp / report, inputs=tmp / "inputs.json")


def test_accounting_runs_bucket_by_bucket_and_adds_up_to_the_one_job_check(workspace):
    """Each bucket's check counts only its rows (a member's representative in another
    bucket is that bucket's structure); the sums are those of the atlas in one bucket,
    and add_up_buckets over the jobs' reports writes what check_accounting writes."""
    from foldatlas.accounting import add_up_buckets, check_bucket

    tmp, _, chunks = workspace
    with_members(tmp)
    whole, _ = run(tmp, chunks)
    one = _accounting(tmp, whole, "whole.json")
    split, _ = split_assembly(tmp, chunks, 1, tmp / "split")
    ingest = {"records": tmp / "records.parquet", "sequences": tmp / "sequences.parquet", "outputs": split}
    reports = [check_bucket(b, **ingest, report=tmp / f"{b}.json") for b in bucket_names(1)]
    assert [json.loads((tmp / f"{b}.json").read_text()) for b in bucket_names(1)] == reports
    assert sum(r["counts"]["records"] for r in reports) == 21 and reports[0]["counts"]["status"].get("empty") == 1  # no checksum: the first bucket
    assert all(r["counts"]["records"] < 21 for r in reports)
    summed = add_up_buckets(reports, outputs=split, report=tmp / "summed.json", inputs=tmp / "inputs.json")
    assert summed == _accounting(tmp, split, "split.json")
    assert summed["checks"] == {**one["checks"], "buckets": 16} and one["checks"]["buckets"] == 1
    assert summed["checks"]["high_confidence"] == sum(r["counts"]["high_confidence"] for r in reports) > 0


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite one Parquet file through ``edit`` (a function of its rows)."""
    table = pq.read_table(path)
    pq.write_table(pa.Table.from_pylist(edit(table.to_pylist()), schema=table.schema), path)


def _move_record(atlas: AtlasOutputs) -> str:
    """A record's metadata row moved to another bucket's file: the totals still hold."""
    rows = pq.read_table(atlas.part(atlas.metadata, "1")).to_pylist()
    moved = next(r for r in rows if r["checksum"])
    _rewrite(atlas.part(atlas.metadata, "1"), lambda rs: [r for r in rs if r["record_index"] != moved["record_index"]])
    _rewrite(atlas.part(atlas.metadata, "2"), lambda rs: [*rs, moved])
    return "bucket 2: its metadata file holds 1 records of another bucket"


def _lose_outside_every_bucket(atlas: AtlasOutputs, tmp: Path) -> str:
    """The record without a checksum given one in no bucket, and its metadata row gone:
    every bucket agrees with itself; only the sum against the input count sees it."""
    _rewrite(tmp / "records.parquet", lambda rs: [{**r, "checksum": "Z" * 32} if r["checksum"] is None else r for r in rs])
    _rewrite(atlas.part(atlas.metadata, "0"), lambda rs: [r for r in rs if r["checksum"] is not None])
    return "in.fa: the input holds 20 records (independent count of its header lines), records.parquet has 19"


def _unindex_representative(atlas: AtlasOutputs, members: dict[str, str]) -> str:
    """A representative's structure, which only members in other buckets point at, gone from its bucket's index."""
    meta = pq.read_table(atlas.metadata).to_pylist()
    rep = next(r["representative"] for r in meta if r["rep_high_confidence"] and not any(m["checksum"] == r["representative"] and m["high_confidence"] for m in meta))
    _rewrite(atlas.part(atlas.index, rep[0]), lambda rs: [r for r in rs if r["checksum"] != rep])
    return f"bucket {rep[0]}: 1 high-confidence sequences have no structure in the archives"


def _move_empty_record(atlas: AtlasOutputs) -> str:
    """The record without a checksum (the first bucket's) moved to another bucket's file."""
    rows = pq.read_table(atlas.part(atlas.metadata, "0")).to_pylist()
    empty = next(r for r in rows if r["checksum"] is None)
    _rewrite(atlas.part(atlas.metadata, "0"), lambda rs: [r for r in rs if r["checksum"] is not None])
    _rewrite(atlas.part(atlas.metadata, "5"), lambda rs: [*rs, empty])
    return "bucket 5: its metadata file holds 1 records of another bucket"


def _share_a_key(atlas: AtlasOutputs, tmp: Path) -> str:
    """A record given the key of a record in another bucket, in records.parquet and its
    metadata file alike (as if ingest had numbered it wrongly): every bucket agrees with
    itself, the counts add up; only the keys' sums show that one key is gone."""
    meta = pq.read_table(atlas.metadata).to_pylist()
    a = next(r for r in meta if r["checksum"] and r["checksum"][0] == "1")
    b = next(r for r in meta if r["checksum"] and r["checksum"][0] not in "01")
    renumber = lambda rs: [{**r, "record_index": a["record_index"]} if r["record_index"] == b["record_index"] else r for r in rs]  # noqa: E731
    _rewrite(tmp / "records.parquet", renumber)
    _rewrite(atlas.part(atlas.metadata, b["checksum"][0]), renumber)
    return "in.fa: expected its 20 records numbered 0..19, each once (record_index), found other keys (two records share one, or one is out of that range)"


def _copy_a_file(atlas: AtlasOutputs) -> str:
    """A copy of a bucket's metadata file beside it: a reader of the folder doubles its rows."""
    (atlas.metadata / "1-copy.parquet").write_bytes(atlas.part(atlas.metadata, "1").read_bytes())
    return f"{atlas.metadata} holds ['1-copy.parquet'] beside this atlas's buckets, and lacks []"


def orphan_representative(tmp: Path, formats: tuple[str, ...] = ("pdb",)) -> tuple[list[ChunkOutputs], dict[str, str], str]:
    """The workspace's chunks and ingest tables with members (with_members), less the
    record of one representative, which only members in other buckets then point at.
    Returns the chunks, member -> representative, and that representative."""
    chunks = [make_chunk(tmp / "fold", 0, SEQS[:5], formats=formats), make_chunk(tmp / "fold", 1, SEQS[5:], formats=formats)]
    write_ingest(tmp, SEQS, [0] * 5 + [1] * 5)
    members = with_members(tmp)
    rep = next(iter(members.values()))
    _rewrite(tmp / "records.parquet", lambda rs: [{**r, "record_index": i} for i, r in enumerate(r for r in rs if r["checksum"] != rep)])
    count = json.loads((tmp / "inputs.json").read_text())
    count["files"][0]["records"] -= 1
    (tmp / "inputs.json").write_text(json.dumps(count))
    _rewrite(tmp / "sequences.parquet", lambda rs: [r for r in rs if r["checksum"] != rep])
    return chunks, members, rep


@pytest.fixture(scope="module")
def member_atlas(tmp_path_factory):
    """The workspace's chunks and ingest tables with members (with_members), less the
    record of one representative, which only members in other buckets then point at,
    assembled in 16 buckets; the accounting holds. Returns (folder, member -> representative)."""
    tmp = tmp_path_factory.mktemp("member_atlas")
    chunks, members, _ = orphan_representative(tmp)
    split, _ = split_assembly(tmp, chunks, 1, tmp / "split")
    assert _accounting(tmp, split)["ok"]
    (tmp / "accounting.json").unlink()
    return tmp, members


@pytest.mark.parametrize("how", ["move", "move_empty", "outside", "share_key", "copy", "unindex", "missing_bucket", "stale"])
def test_accounting_finds_what_a_bucket_lost_or_took_from_another(member_atlas, tmp_path, how):
    """Corruptions that the atlas's totals alone would not show are named by bucket;
    a record in no bucket is caught by the sum against the input count; the sum refuses
    an incomplete set of bucket reports."""
    from foldatlas.accounting import add_up_buckets, check_bucket
    from foldatlas.errors import AccountingError

    import shutil

    made, members = member_atlas
    tmp = tmp_path / "atlas"
    shutil.copytree(made, tmp)  # each case corrupts its own copy
    split = Layout(tmp / "split").atlas
    if how in ("missing_bucket", "stale"):
        reports = [check_bucket(b, records=tmp / "records.parquet", sequences=tmp / "sequences.parquet", outputs=split) for b in bucket_names(1)]
        if how == "missing_bucket":
            reports, problem = reports[1:], r"expected the accounting of the atlas's buckets \[0, 1, 2, 3, \.\.\. 16 in all\], found \[1, 2, 3, 4, \.\.\. 15 in all\]"
        else:  # the atlas finished again (its summary changed) after these reports were made
            split.summary.write_text(split.summary.read_text() + "\n")
            problem = r"the accounting of buckets \[0, 1, 2, 3, \.\.\. 16 in all\] was made for another summary.json"
        with pytest.raises(AccountingError, match=problem):
            add_up_buckets(reports, outputs=split, report=tmp / "summed.json", inputs=tmp / "inputs.json")
        return
    expected = {"move": lambda: _move_record(split), "move_empty": lambda: _move_empty_record(split), "outside": lambda: _lose_outside_every_bucket(split, tmp),
                "share_key": lambda: _share_a_key(split, tmp), "copy": lambda: _copy_a_file(split), "unindex": lambda: _unindex_representative(split, members)}[how]()  # fmt: skip
    with pytest.raises(AccountingError) as info:
        _accounting(tmp, split, "again.json")
    assert expected in info.value.problems, info.value.problems
    if how == "move":
        assert "bucket 1: 1 input records are missing from its metadata file" in info.value.problems
    assert not (tmp / "again.json").exists()


def test_the_finish_removes_another_splits_parts(workspace):
    """After a change of split, atlas_parts/ holds this split's parts, predictions and
    accounting only (the old split's predictions would otherwise stay, a copy of theirs)."""
    tmp, _, chunks = workspace
    split, _ = split_assembly(tmp, chunks, 1, tmp / "a")
    parts = tmp / "a" / "parts"
    (parts / "3.accounting.json").write_text("{}")
    (parts / ".4.predictions.parquet.tmp-7").write_bytes(b"a killed write")
    (parts / "notes.txt").write_text("not a part: stays")
    assert len(list(parts.iterdir())) == 35
    split_assembly(tmp, chunks, 0, tmp / "a")
    assert sorted(p.name for p in parts.iterdir()) == ["all.json", "all.predictions.parquet", "notes.txt"]


def test_the_report_adds_up_the_buckets_figures_to_those_of_one_bucket(workspace):
    """The report reads each bucket's figures (from the bucket's files only) and adds
    them up: over 16 buckets, the same counts, histograms, best, worst and lowest rows as
    over the atlas in one bucket; the sample keeps its size; the page shows them."""
    from foldatlas.report import _merged, bucket_figures, write_report

    tmp, _, chunks = workspace
    with_members(tmp)
    whole, _ = run(tmp, chunks)
    split, _ = split_assembly(tmp, chunks, 1, tmp / "split")
    one = _merged([bucket_figures(WHOLE, whole)])
    parts = [bucket_figures(b, split) for b in bucket_names(1)]
    assert json.loads(json.dumps(parts)) == parts  # what check_bucket writes: JSON
    many = _merged(parts)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("shard", "data_offset")} for r in rows]  # noqa: E731 - archive paths name the bucket
    for key in ("bins", "bands", "hist", "failures", "lowest"):
        assert many[key] == one[key], key
    assert strip(many["best"]) == strip(one["best"]) and strip(many["worst"]) == strip(one["worst"])
    assert sum(one["hist"]["plddt"]) == sum(one["bins"].values()) == sum(one["bands"]["structures"]) == 10
    assert sum(one["bands"]["residues"]) == sum(len(s) for s in SEQS)  # every residue of the 10 predictions, once
    assert len(one["sample"]) == len(many["sample"]) == 10 and sorted(map(tuple, many["sample"])) == sorted(map(tuple, one["sample"]))
    assert [r[3] for r in one["lowest"]].count("empty") == 1 and len(one["lowest"]) == 11  # 10 folded and the empty record; members are not listed
    page = write_report(metadata=split.metadata, summary=split.summary, out=tmp / "report.html", figures=parts).read_text()
    archived = [r for r in many["best"] if r["shard"]]
    assert page.count("<figure id=") == 7 and page.count('<a download="') == len(archived) == 6 and len(many["best"]) == 10
    with pytest.raises(ValueError, match="expected the figures of the atlas's buckets"):
        write_report(metadata=split.metadata, summary=split.summary, out=tmp / "report.html", figures=parts[1:])
    with pytest.raises(ValueError, match=r"made by another version; run the check_bucket jobs again"):  # e.g. an accounting of 0.9: no figures
        write_report(metadata=split.metadata, summary=split.summary, out=tmp / "report.html", figures=[{}, *parts[1:]])


def test_the_report_figures_survive_missing_and_nan_confidences(workspace):
    """A folded row with a NaN pTM or no pLDDT neither stops the bucket's figures (JSON
    has no NaN: the accounting that carries them would fail) nor the merge, and is left
    out of the ranked rows, histograms and sample; a float32 0.7 is counted below 0.7."""
    from foldatlas.atomic import write_json
    from foldatlas.report import _merged, bucket_figures

    tmp, _, chunks = workspace
    split, _ = split_assembly(tmp, chunks, 1, tmp / "split")
    bucket = next(b for b in bucket_names(1) if pq.read_table(split.part(split.metadata, b)).num_rows >= 2)
    rows = pq.read_table(split.part(split.metadata, bucket)).to_pylist()
    nan_row, none_row = rows[0]["checksum"], rows[1]["checksum"]
    changes = {nan_row: {"ptm": float("nan")}, none_row: {"plddt": None, "plddt_ca": None}}
    _rewrite(split.part(split.metadata, bucket), lambda rs: [{**r, **changes.get(r["checksum"], {})} for r in rs])
    figures = [bucket_figures(b, split) for b in bucket_names(1)]
    write_json(tmp / "figures.json", figures)  # refuses NaN
    mine = next(f for f in figures if f["bucket"] == bucket)
    assert len(mine["sample"]) == len(rows) - 2 and {r["checksum"] for r in mine["best"] + mine["worst"]}.isdisjoint({nan_row, none_row})
    assert sum(mine["hist"]["ptm"]) == len(rows) - 1 and sum(mine["hist"]["plddt"]) == len(rows) - 1
    assert sum(mine["bands"]["structures"]) == len(rows) - 1  # the missing pLDDT is in no band
    m = _merged(figures)
    assert len(m["best"]) == 8 and len(m["sample"]) == 8  # the 10 folded structures but the two
    assert next(r for r in m["lowest"] if r[0] == next(x["id"] for x in rows if x["checksum"] == none_row))[6] is None
    # float32 0.7 (0.69999999) is in the bin below 0.70, as the strict filter sees it
    _rewrite(split.part(split.metadata, bucket), lambda rs: [{**r, "plddt": 0.7} if r["checksum"] == nan_row else r for r in rs])
    assert bucket_figures(bucket, split)["hist"]["plddt"][34] >= 1
