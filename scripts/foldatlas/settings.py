"""Typed settings: one frozen dataclass per config section, built by ``from_config``.

The schema (``workflow/schemas/config.schema.yaml``) is the only place that holds
defaults: :meth:`Section.from_config` fills what a section leaves out from it and
validates the section, so a library caller gets the same messages as a workflow run.
The dataclasses themselves have no defaults, and their fields are exactly the keys of
their section (both checked by tests).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from .config import validate_section
from .errors import ConfigError

__all__ = [
    "Section",
    "OutputSettings",
    "StoreSettings",
    "IngestSettings",
    "CostModel",
    "ChunkSettings",
    "FoldSettings",
    "fold_outputs_key",
    "model_fingerprint",
    "EmbeddingSettings",
    "FilterSettings",
    "AtlasSettings",
    "StructureSettings",
    "FoldseekClusterSettings",
    "FoldseekSearchSettings",
    "FoldseekSettings",
    "MmseqsSettings",
    "SlurmSettings",
]

T = TypeVar("T", bound="Section")


class Section:
    """Base of the settings dataclasses: ``SECTION`` is the config path they read."""

    SECTION: ClassVar[tuple[str, ...]]

    @classmethod
    def from_config(cls: type[T], section: Mapping[str, Any] | None = None) -> T:
        """The settings of one config section (a mapping; missing keys take the schema's
        defaults). Raises :class:`~foldatlas.errors.ConfigError` naming the full key."""
        top, *nested = cls.SECTION
        wrapped: dict[str, Any] = dict(section or {})
        for key in reversed(nested):
            wrapped = {key: wrapped}
        filled = validate_section(top, wrapped)
        for key in nested:
            filled = filled[key]
        return cls._build(filled)

    @classmethod
    def _build(cls: type[T], values: Mapping[str, Any]) -> T:
        hints = _hints(cls)
        return cls(**{f.name: _coerce(hints[f.name], values[f.name]) for f in dataclasses.fields(cls)})  # type: ignore[call-arg, arg-type]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(hint: Any, value: Any) -> Any:
    """A validated config value as the type its field declares."""
    if isinstance(hint, type) and issubclass(hint, Section):
        return hint._build(value)
    if hint is float:
        return float(value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


@dataclass(frozen=True)
class OutputSettings(Section):
    """``output``: where results go."""

    SECTION = ("output",)
    root: str


@dataclass(frozen=True)
class StoreSettings(Section):
    """``store``: the folder of the store and the name of the release a run publishes
    (empty: ``<output.root>/store`` and the next number)."""

    SECTION = ("store",)
    path: str
    release: str


@dataclass(frozen=True)
class IngestSettings(Section):
    """``ingest``: validation of records, redundancy reduction, and the memory and threads of deduplication."""

    SECTION = ("ingest",)
    min_length: int
    max_length: int
    on_invalid: str
    redundancy: str
    memory_gb: float
    threads: int
    #: Plan in checksum buckets of this many hex digits, one job each (0: one job).
    bucket_digits: int

    def __post_init__(self) -> None:
        if self.bucket_digits and self.redundancy != "none":
            raise ConfigError(
                f"config keys 'ingest.bucket_digits' = {self.bucket_digits} and 'ingest.redundancy' = {self.redundancy!r}: "
                "expected bucket_digits 0 with a redundancy other than none (clustering compares sequences of every bucket, so it plans in one job)",
                key="ingest.bucket_digits",
                value=self.bucket_digits,
            )
        if self.min_length > self.max_length:
            raise ConfigError(
                f"config keys 'ingest.min_length' = {self.min_length} and 'ingest.max_length' = {self.max_length}: "
                "expected min_length <= max_length",
                key="ingest.min_length",
                value=self.min_length,
            )


@dataclass(frozen=True)
class CostModel(Section):
    """``chunks.cost``: estimated GPU seconds to fold one sequence of length L.

    ``seconds(L) = overhead + linear*L + quadratic*L**2 + cubic*L**3``. The terms follow
    ESMFold's cost: the ESM-2 language model is linear in L (its attention is a small
    quadratic part), the folding trunk's pair representation is quadratic and its
    triangular updates and attention are cubic. Only the ratios matter for balancing
    chunks; the scale sets the runtime asked of the cluster.
    """

    SECTION = ("chunks", "cost")
    overhead: float
    linear: float
    quadratic: float
    cubic: float

    def seconds(self, length: np.ndarray) -> np.ndarray:
        """Estimated seconds for each length (float64 array of the same shape)."""
        L = np.asarray(length, dtype=np.float64)
        return self.overhead + L * (self.linear + L * (self.quadratic + L * self.cubic))


@dataclass(frozen=True)
class ChunkSettings(Section):
    """``chunks``: how unique sequences are cut into fold jobs."""

    SECTION = ("chunks",)
    gpu_seconds: float
    max_sequences: int
    #: ``"auto"`` or 0, 1, 2: hex digits of the checksum bucket a chunk keeps to
    bucket_digits: int | str
    cost: CostModel


@dataclass(frozen=True)
class EmbeddingSettings(Section):
    """``embeddings``: which ESM-2 hidden states are kept, and how."""

    SECTION = ("embeddings",)
    layers: tuple[int, ...]
    dtype: str
    per_residue: bool
    model: str | None


@dataclass(frozen=True)
class FoldSettings(Section):
    """``fold``: the model, its precision, batching, and how a fold job commits and reports.

    ``chunk_size`` is ``"auto"``, None (never chunk; ``0`` in the config) or a size.
    ``max_tokens_per_batch`` and ``max_pair_tokens_per_batch`` are 0 for automatic.
    """

    SECTION = ("fold",)
    model: str
    weights: str | None
    device: str
    precision: str
    num_recycles: int
    chunk_size: int | str | None
    max_tokens_per_batch: int
    max_pair_tokens_per_batch: int
    gpu_memory_fraction: float
    max_batch_size: int
    save_pae: bool
    artefact_max_plddt: float
    commit_seconds: float
    progress_seconds: float
    threads: int
    mem_mb: int
    chunks_per_job: int

    #: Keys that change how a fold job cuts, commits and reports its work, never what it
    #: records: changing one refolds nothing (see :func:`fold_outputs_key`).
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset(
        {"max_tokens_per_batch", "max_pair_tokens_per_batch", "gpu_memory_fraction", "max_batch_size", "commit_seconds", "progress_seconds", "threads", "mem_mb", "chunks_per_job"}
    )

    def __post_init__(self) -> None:
        if self.chunk_size == 0:
            object.__setattr__(self, "chunk_size", None)


def fold_outputs_key(config: Mapping[str, Any]) -> str:
    """Every setting that can change a fold job's outputs, as canonical JSON (sorted keys).

    That is the ``fold`` section less :attr:`FoldSettings.OPERATIONAL`, with the
    ``embeddings`` and ``structures`` sections. It is a param of rule ``fold_chunk``, so a
    change reruns the fold jobs and any other change (batch sizes, commit interval,
    threads, memory, the order of keys) reruns none. The fold job itself identifies the
    weights by content (:func:`foldatlas.model.weights_checksum`); here they are named by
    path, as at start-up nothing is read.
    """
    fold = {k: v for k, v in config["fold"].items() if k not in FoldSettings.OPERATIONAL}
    return json.dumps({"fold": fold, "embeddings": config["embeddings"], "structures": config["structures"]}, sort_keys=True)


def model_fingerprint(config: Mapping[str, Any]) -> str:
    """The store's key for the model and every setting that can change a prediction: the
    first 16 hex digits of the SHA-256 of :func:`fold_outputs_key`. A sequence is folded
    once per fingerprint; another model, ``num_recycles``, precision or chunking is
    another fingerprint, kept apart in the store (never a mix)."""
    return hashlib.sha256(fold_outputs_key(config).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FilterSettings(Section):
    """``filter``: which predictions are high confidence (0-1 scale; strict ``>``)."""

    SECTION = ("filter",)
    min_plddt: float
    min_ptm: float
    exclude_artefacts: bool

    def passes(self, plddt: float | None, ptm: float | None, artefact: bool) -> bool:
        """``plddt > min_plddt and ptm > min_ptm`` (and not an excluded artefact)."""
        if plddt is None or ptm is None or math.isnan(plddt) or math.isnan(ptm):
            return False
        return plddt > self.min_plddt and ptm > self.min_ptm and not (self.exclude_artefacts and artefact)


@dataclass(frozen=True)
class AtlasSettings(Section):
    """``atlas``: how the atlas is written."""

    SECTION = ("atlas",)
    shard_size: int
    copy_structures: bool
    bins: bool
    all_structures: bool
    foldcomp: bool
    foldcomp_check_fraction: float
    foldcomp_max_rmsd: float
    threads: int
    memory_gb: float
    bucket_digits: int | str
    report: bool


@dataclass(frozen=True)
class StructureSettings(Section):
    """``structures``: which files each folded structure gets (PDB always first)."""

    SECTION = ("structures",)
    formats: tuple[str, ...]


@dataclass(frozen=True)
class FoldseekClusterSettings(Section):
    """``foldseek.cluster``: options of ``foldseek cluster``."""

    SECTION = ("foldseek", "cluster")
    coverage: float
    cov_mode: int
    evalue: float
    alignment_type: int
    tmscore_threshold: float
    lddt_threshold: float
    steps: int
    shards: int


@dataclass(frozen=True)
class FoldseekSearchSettings(Section):
    """``foldseek.search``: the optional search against reference databases."""

    SECTION = ("foldseek", "search")
    targets: tuple[str, ...]
    evalue: float
    max_seqs: int


@dataclass(frozen=True)
class FoldseekSettings(Section):
    """``foldseek``: structural clustering and search."""

    SECTION = ("foldseek",)
    enabled: bool
    binary: str
    threads: int
    max_mem_mb: int
    representative: str
    cluster: FoldseekClusterSettings
    search: FoldseekSearchSettings


@dataclass(frozen=True)
class MmseqsSettings(Section):
    """``mmseqs``: sequence clustering of the unique sequences."""

    SECTION = ("mmseqs",)
    enabled: bool
    binary: str
    min_seq_id: float
    coverage: float
    cov_mode: int
    cluster_mode: int
    kmer_per_seq: int
    segments: int
    threads: int
    max_mem_mb: int


@dataclass(frozen=True)
class SlurmSettings(Section):
    """``slurm``: site settings of Slurm jobs (None: the environment variable, or Slurm's default)."""

    SECTION = ("slurm",)
    partition: str | None
    gpu_partition: str | None
    account: str | None
    gpu_model: str | None
    constraint: str | None
    #: minutes; the cap of every job's runtime request (None: no cap)
    max_runtime: int | None
