"""Structure-archive benchmark: the host work after the model, against `tar -czf`.

Every folded structure passes through two host steps after the forward pass: the
fold job writes it into its chunk archive (at the end of the job, while the GPU
waits), and ``assemble_atlas`` files the high-confidence ones into the atlas's indexed
shards (one serial job over all chunks). This script makes synthetic fold outputs of
realistic size (PDB text of MGnify-like lengths, log-normal around 250 aa, from
``pdb_text``), runs both steps and times them against the peer a user would reach for
to pack the same PDB files: ``tar -czf`` (GNU tar + gzip -6), in the same run.

- ``fold_chunk`` is driven by a stand-in engine that returns precomputed predictions
  (no model), so its time is the writer thread (PDB text, segments; overlapped with
  the forward passes in a real job) plus the merge at the end of the job
  (``merge_seconds``: chunk archive and tables, while the GPU waits).
- ``assemble_atlas`` runs on all chunks with the default filter (both > 0.7), about
  half of the structures pass. It decompresses every copied member once to check its
  gzip CRC-32 and length (and every tar header's checksum); it is run a second time,
  on the same chunks, with that check replaced by a header-only one (the copy as it was
  before the check), to measure what the check costs.

Usage: python bench/assemble_vs_tar.py [--chunks 4] [--per-chunk 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import pyarrow as pa
import pyarrow.parquet as pq
import torch

import foldatlas.atlas as atlas_module
import foldatlas.fold as fold_module
from foldatlas.archive import BLOCK, Member, _header
from foldatlas.atomic import write_json
from foldatlas.atlas import assemble_atlas
from foldatlas.batching import make_batches
from foldatlas.engine import EngineSettings
from foldatlas.fasta import sequence_checksum
from foldatlas.fold import fold_chunk
from foldatlas.layout import Layout
from foldatlas.prediction import Prediction, SeqItem
from foldatlas.settings import AtlasSettings, EmbeddingSettings, FilterSettings, FoldSettings
from foldatlas.structures import RESTYPES
from foldatlas.tables import CHUNK_SCHEMA, RECORDS_SCHEMA, SEQUENCES_SCHEMA, write_table

REPO = Path(__file__).resolve().parents[1]

DIM = 64  # embedding width of the stand-in (small: this measures structures)


def atom37_mask() -> np.ndarray:
    from transformers.models.esm.openfold_utils.residue_constants import restype_atom37_mask

    return np.asarray(restype_atom37_mask, dtype=bool)  # (21, 37)


def synthetic_prediction(item: SeqItem, rng: np.random.Generator, mask37: np.ndarray) -> Prediction:
    """A prediction with a plausible backbone trace (3.8 A steps) and side chains nearby."""
    L = item.length
    aatype = np.array([RESTYPES.index(c) for c in item.sequence], dtype=np.int16)
    steps = rng.normal(size=(L, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
    ca = np.cumsum(steps, axis=0)
    positions = (ca[:, None, :] + rng.normal(scale=1.5, size=(L, 37, 3))).astype(np.float32)
    mask = mask37[aatype]
    level = rng.uniform(0.5, 0.95)
    atom_plddt = np.clip(rng.normal(level, 0.08, size=(L, 37)), 0, 1).astype(np.float32)
    ca_plddt = atom_plddt[:, 1].copy()
    return Prediction(
        checksum=item.checksum, length=L, plddt=float(atom_plddt[mask].mean()), plddt_ca=float(ca_plddt.mean()),
        ptm=float(np.clip(level + rng.normal(0, 0.05), 0, 1)), num_conf=int((ca_plddt > 0.7).sum()),
        max_pae=20.0, mean_pae=8.0, batch_size=1, seconds=0.0, aatype=aatype, positions=positions,
        atom_mask=mask, atom_plddt=atom_plddt, residue_plddt=ca_plddt,
        embeddings={DIM: rng.normal(size=DIM).astype(np.float32)},
    )  # fmt: skip


class StandInEngine:
    """What ``fold_chunk`` needs of a FoldEngine; ``predict`` returns precomputed results."""

    def __init__(self, predictions: dict[str, Prediction], dim: int = DIM) -> None:
        self.predictions = predictions
        fold = FoldSettings.from_config({"max_tokens_per_batch": 10_000_000, "max_pair_tokens_per_batch": 1_000_000_000})
        self.settings = EngineSettings.resolve(fold, EmbeddingSettings.from_config({"layers": [dim]}), free_memory=None)
        self.loaded = SimpleNamespace(model_id="bench-stand-in", model_version="none", lm_precision="fp32", tf32=False, weights_checksum="none")
        self.embedder = None
        self.embedding_dim = dim
        self.embedding_layers = (dim,)
        self.device = torch.device("cpu")

    def batches(self, items: list[SeqItem]) -> list[list[SeqItem]]:
        s = self.settings
        cuts = make_batches([it.length for it in items], max_tokens=s.max_tokens, max_pair_tokens=s.max_pair_tokens, max_batch_size=s.max_batch_size)
        return [[items[i] for i in batch] for batch in cuts]

    def predict(self, items: list[SeqItem]) -> list[Prediction]:
        return [self.predictions[it.checksum] for it in items]


def timed_merge() -> list[float]:
    """Wrap fold's end-of-job merge (chunk archive + tables) to time it alone."""
    seconds: list[float] = []
    inner = fold_module._merge

    def merge(*a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        r = inner(*a, **k)
        seconds.append(time.perf_counter() - t)
        return r

    fold_module._merge = merge  # type: ignore[assignment]
    return seconds


def headers_only(block: bytes, checksum: str, formats=("pdb",), *, where: str = "entry") -> list[Member]:  # type: ignore[no-untyped-def]
    """The copy without the CRC check: tar headers parsed, gzip data not decompressed
    (the decompressed size from the gzip trailer)."""
    members, pos = [], 0
    for _ in formats:
        info = _header(block[pos : pos + BLOCK], where)
        start = pos + BLOCK
        size = int.from_bytes(block[start + info.size - 4 : start + info.size], "little")
        members.append(Member(info.name, start, info.size, bytes(size)))  # a placeholder of the right size
        pos += members[-1].entry_length
    return members


def timed_assemble(layout: Layout, chunk_outputs: list, root_name: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    atlas = Layout(layout.root.parent / root_name).atlas
    t = time.perf_counter()
    summary = assemble_atlas(records=layout.records, sequences=layout.sequences, chunks=chunk_outputs, outputs=atlas,
                             filter=FilterSettings.from_config({}), atlas=AtlasSettings.from_config({}), threads=2, inputs=layout.inputs)  # fmt: skip
    return time.perf_counter() - t, summary


def make_chunk(folder: Path, k: int, n: int, rng: np.random.Generator) -> tuple[Path, list[str]]:
    lengths = np.sort(np.clip(rng.lognormal(np.log(250), 0.55, n).astype(int), 30, 1280))
    seqs = ["".join(rng.choice(list(RESTYPES), int(L))) for L in lengths]
    path = folder / f"chunk_{k:06d}.parquet"
    write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs,
                          "length": [len(s) for s in seqs], "est_seconds": [1.0] * n}), path, CHUNK_SCHEMA)  # fmt: skip
    return path, seqs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--per-chunk", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    mask37 = atom37_mask()
    tmp = Path(tempfile.mkdtemp(prefix="bench-assemble-"))
    result: dict[str, object] = {"chunks": args.chunks, "per_chunk": args.per_chunk}
    try:
        layout = Layout(tmp / "results")
        chunk_outputs, all_seqs, fold_s = [], [], 0.0
        merges = timed_merge()
        for k in range(args.chunks):
            path, seqs = make_chunk(tmp, k, args.per_chunk, rng)
            all_seqs += seqs
            items = [SeqItem(sequence_checksum(s.encode()), s) for s in seqs]
            engine = StandInEngine({it.checksum: synthetic_prediction(it, rng, mask37) for it in items})
            outputs = layout.store("bench").chunk_outputs(f"{k:06d}")
            t = time.perf_counter()
            fold_chunk(path, outputs, tmp / f"partial_{k}", engine, commit_seconds=60, progress_seconds=3600)  # type: ignore[arg-type]
            fold_s += time.perf_counter() - t
            chunk_outputs.append(outputs)
        n, merge_s = len(all_seqs), sum(merges)
        sums = [sequence_checksum(s.encode()) for s in all_seqs]
        records = pa.table({
            "source": ["bench.fa"] * n, "source_index": [0] * n, "record_index": list(range(n)), "line": list(range(1, n + 1)),
            "id": [f"s{i}" for i in range(n)], "header": [f"s{i}" for i in range(n)], "checksum": sums,
            "length": [len(s) for s in all_seqs], "n_nonstandard": [0] * n, "status": ["ok"] * n, "reason": [""] * n,
        })  # fmt: skip
        write_table(records, layout.records, RECORDS_SCHEMA)
        chunk_of = [k for k in range(args.chunks) for _ in range(args.per_chunk)]
        write_table(pa.table({"checksum": sums, "sequence": all_seqs, "length": [len(s) for s in all_seqs], "n_nonstandard": [0] * n,
                              "n_records": [1] * n, "est_seconds": [1.0] * n, "chunk": chunk_of, "release": ["bench"] * n,
                              "representative": pa.nulls(n, pa.string()), "identity": pa.nulls(n, pa.float64()), "coverage": pa.nulls(n, pa.float64())}),
                    layout.sequences, SEQUENCES_SCHEMA)  # fmt: skip
        write_json(layout.inputs, {"files": [{"source_index": 0, "source": "bench.fa", "format": "plain", "file_bytes": 0, "text_bytes": 0, "records": n, "text_sha256": "0" * 64}]})
        real_check = atlas_module.check_block
        atlas_module.check_block = headers_only  # type: ignore[assignment]
        unchecked_s, _ = timed_assemble(layout, chunk_outputs, "unchecked")
        atlas_module.check_block = real_check  # type: ignore[assignment]
        assemble_s, summary = timed_assemble(layout, chunk_outputs, "results")
        root = layout.atlas.root
        kept = int(summary["counts"]["archived_high_confidence"])
        # peer: the same high-confidence PDB files, extracted (not timed), packed by tar -czf
        pdb_dir = tmp / "pdb"
        pdb_dir.mkdir()
        index = pq.read_table(root / "structures/index.parquet").to_pylist()
        from foldatlas.archive import IndexEntry, extract_structure

        pdb_bytes = 0
        for row in index:
            entry = IndexEntry(row["checksum"], row["archive"], row["member"], row["data_offset"], row["data_length"], row["pdb_size"])
            pdb_bytes += extract_structure(root / row["archive"], entry, pdb_dir).stat().st_size
        t = time.perf_counter()
        subprocess.run(["tar", "-czf", str(tmp / "peer.tar.gz"), "-C", str(pdb_dir), "."], check=True)
        tar_s = time.perf_counter() - t
        shards_mb = sum(p.stat().st_size for p in (root / "structures").glob("*.tar")) / 1e6
        result.update({
            "structures": n, "high_confidence": kept, "pdb_mb_high_confidence": round(pdb_bytes / 1e6, 1),
            "fold_host_seconds": round(fold_s, 2), "merge_seconds": round(merge_s, 2),
            "fold_host_structures_per_s": round(n / fold_s, 1), "merge_structures_per_s": round(n / merge_s, 1),
            "assemble_seconds": round(assemble_s, 2), "assemble_structures_per_s": round(n / assemble_s, 1),
            "assemble_without_crc_check_seconds": round(unchecked_s, 2), "assemble_without_crc_check_structures_per_s": round(n / unchecked_s, 1),
            "crc_check_cost": round(assemble_s / unchecked_s - 1, 3),
            "tar_czf_seconds": round(tar_s, 2), "tar_czf_structures_per_s": round(kept / tar_s, 1),
            "tar_seconds_over_assemble_seconds": round(tar_s / assemble_s, 2),
            "atlas_shards_mb": round(shards_mb, 1), "tar_czf_mb": round((tmp / "peer.tar.gz").stat().st_size / 1e6, 1),
            "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        })  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
