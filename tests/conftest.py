"""Shared fixtures: temporary FASTA files and one tiny ESMFold per test session."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_fasta(path: Path, records: list[tuple[str, str]], *, compress: str | None = None, width: int = 60) -> Path:
    """Write ``records`` (header, sequence) as FASTA; ``compress`` is None, 'gz' or 'zst'."""
    lines = []
    for header, seq in records:
        lines.append(f">{header}\n")
        lines.extend(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
    data = "".join(lines).encode()
    if compress == "gz":
        data = gzip.compress(data)
    elif compress == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def engine_settings(*, layers: tuple[int, ...] = (-1,), **fold: object):
    """Engine settings of a CPU job: the schema's defaults, with ``fold`` keys overridden."""
    from foldatlas.engine import EngineSettings
    from foldatlas.settings import EmbeddingSettings, FoldSettings

    return EngineSettings.resolve(FoldSettings.from_config(fold), EmbeddingSettings.from_config({"layers": list(layers)}), free_memory=None)


def read_part(path: Path, part: Path, *, source: str, source_index: int, workers: int = 1, **ingest: object):
    """``read_fasta_file`` with the ``ingest`` section's defaults, ``ingest`` keys overridden."""
    from foldatlas.ingest import read_fasta_file
    from foldatlas.settings import IngestSettings

    return read_fasta_file(path, part, source=source, source_index=source_index, settings=IngestSettings.from_config(ingest), workers=workers)


def chunk_settings(gpu_seconds: float, max_sequences: int, **chunks: object):
    """The ``chunks`` section with the default cost model, ``chunks`` keys overridden."""
    from foldatlas.settings import ChunkSettings

    return ChunkSettings.from_config({"gpu_seconds": gpu_seconds, "max_sequences": max_sequences, **chunks})


def save_tiny_weights(folder: Path, seed: int) -> Path:
    """A tiny ESMFold with random weights from ``seed``, saved as a real weights folder
    (``save_pretrained``: config.json + safetensors), loadable as fold.model: esmfold_v1."""
    import torch
    from transformers import EsmForProteinFolding

    from foldatlas.model import tiny_esmfold_config

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        EsmForProteinFolding(tiny_esmfold_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model():
    from foldatlas.model import load_folding_model

    return load_folding_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def demo_sequences() -> list[str]:
    """Real UniProt sequences of the bundled example (46-214 residues)."""
    from foldatlas.fasta import iter_records, validate_sequence

    seqs = []
    for rec in iter_records(REPO / "resources/demo/proteins.fasta.gz"):
        v = validate_sequence(rec.body, min_length=1, max_length=10_000)
        seqs.append(v.sequence.decode())
    return seqs
