"""The fold engine: ESMFold forward passes sized to the device's memory, with out-of-memory recovery.

One :class:`FoldEngine` holds one loaded model for a whole job. :meth:`FoldEngine.predict`
folds a batch and extracts, per sequence and cropped to its length: atom positions,
per-atom pLDDT (0-1), pTM computed per sequence (transformers' batched ``ptm`` is one
number for the whole padded batch), PAE, and ESM-2 embeddings taken from the *same*
forward pass by a hook on the language model (``output_hidden_states`` is ignored by
``EsmForProteinFolding``); the hook keeps only the requested layers.

Batches (:meth:`FoldEngine.batches`): on a GPU a batch of length-sorted sequences grows
while the memory model's estimate (:class:`~foldatlas.batching.MemoryModel`) fits the
memory budget (a share of the memory free after loading), unchunked; a sequence that
does not fit alone gets the largest trunk chunk size that does.

Recovery: on out-of-memory (CUDA's, or cuBLAS/cuDNN allocation failures) the batch is
split in halves, recursively; a single sequence is retried with smaller trunk
``chunk_size`` (128, 64, 32) and recorded with status ``oom`` if it still fails. Every
retry runs *after* the failed attempt's ``except`` block has been left, so the failed
forward's tensors (held by the traceback's frames) are freed first. An out-of-memory
error on a batch the model said would fit lowers the budget for the rest of the job
(logged). Any other error is isolated the same way and recorded with status ``error``.
Errors that are not about one sequence (CUDA faults, or :data:`MAX_CONSECUTIVE_FAILURES`
``error`` records in a row; ``oom`` records do not count) stop the job.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from . import faults
from .batching import next_batch_end
from .errors import FoldatlasError
from .esm2 import resolve_layers
from .model import LoadedModel, memory_model
from .prediction import HostOutput, Prediction, SeqItem, predictions_from_output
from .settings import EmbeddingSettings, FoldSettings
from .status import Status

__all__ = [
    "CHUNK_SIZE_FALLBACKS",
    "AUTO_CHUNK_MIN_LENGTH",
    "AUTO_CHUNK_CPU",
    "AUTO_TOKENS_CPU",
    "AUTO_TOKENS_GPU",
    "MAX_CONSECUTIVE_FAILURES",
    "OOM_BUDGET_FACTOR",
    "EngineSettings",
    "SystemicFoldError",
    "FoldEngine",
    "is_oom",
]

log = logging.getLogger("foldatlas.engine")

#: Trunk chunk sizes tried, in order, for one sequence that ran out of memory.
CHUNK_SIZE_FALLBACKS = (128, 64, 32)
#: On a GPU without a memory budget, ``fold.chunk_size: auto`` chunks (128) from this
#: length on. On the CPU it always chunks (64), which is faster there (cache-sized
#: tiles: 3.3 s against 3.9 s unchunked for 40 sequences of 50-150 aa, tiny model).
AUTO_CHUNK_MIN_LENGTH = 600
AUTO_CHUNK_CPU = 64
#: Token budget per forward pass with ``fold.max_tokens_per_batch: 0``. On the CPU small
#: batches are much faster (40 sequences of 50-150 aa, tiny model: 3.9 s at 1024 tokens,
#: 15.3 s at 4096); GPUs want large batches.
AUTO_TOKENS_CPU, AUTO_TOKENS_GPU = 1024, 4096
#: Pair budget (B*L^2) with ``fold.max_pair_tokens_per_batch: 0`` on the CPU.
AUTO_PAIR_TOKENS_CPU = 1 << 20
#: Stop the job after this many ``error`` records in a row: the fault is not theirs.
MAX_CONSECUTIVE_FAILURES = 16
#: After an out-of-memory error on a batch estimated to fit, the memory budget becomes
#: this share of that batch's estimate.
OOM_BUDGET_FACTOR = 0.8
#: PAE bins of ESMFold's pTM head (max_bin=31, 64 bins).
PTM_MAX_BIN, PTM_NO_BINS = 31, 64
#: Error texts of allocation failures that are not ``torch.OutOfMemoryError``.
_OOM_TEXTS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed", "cudnn_status_not_enough_workspace")
_SYSTEMIC_TEXTS = ("CUDA error", "device-side assert", "illegal memory access", "CUBLAS_STATUS", "CUDNN_STATUS")


class SystemicFoldError(FoldatlasError, RuntimeError):
    """A failure that is not about one sequence (the device, the model, the code)."""


@dataclass(frozen=True)
class EngineSettings:
    """What one fold job's engine needs, resolved for its device (no "auto" left but
    ``chunk_size``, which depends on each batch).

    ``num_recycles`` is the number of extra trunk passes (N recycles = N+1 passes).
    ``chunk_size`` chunks the trunk's axial attention (None: never; ``"auto"``: see
    :meth:`FoldEngine.chunk_size_for`). ``max_pair_tokens`` caps B*L^2 (0: no cap).
    ``memory_budget`` is the bytes one forward pass may use by the memory model (None:
    not limited, the CPU). ``embedding_layers`` index ESM-2 hidden states (0 = embedding
    layer, -1 = last layer, after its final layer norm).
    """

    num_recycles: int
    chunk_size: int | str | None
    max_tokens: int
    max_pair_tokens: int
    max_batch_size: int
    memory_budget: int | None
    embedding_layers: tuple[int, ...]
    embedding_dtype: str
    per_residue_embeddings: bool
    save_pae: bool
    artefact_max_plddt: float

    @classmethod
    def resolve(cls, fold: FoldSettings, embeddings: EmbeddingSettings, *, free_memory: int | None) -> EngineSettings:
        """Settings of a job on a GPU with ``free_memory`` bytes free after loading the
        model (None: the CPU).

        On a GPU the memory budget is ``fold.gpu_memory_fraction`` of the free memory and
        ``max_pair_tokens_per_batch: 0`` sets no pair cap (2^20 on the CPU, for speed);
        ``max_tokens_per_batch: 0`` is 4096 on a GPU and 1024 on the CPU.
        """
        gpu = free_memory is not None
        return cls(
            num_recycles=fold.num_recycles,
            chunk_size=fold.chunk_size,
            max_tokens=fold.max_tokens_per_batch or (AUTO_TOKENS_GPU if gpu else AUTO_TOKENS_CPU),
            max_pair_tokens=fold.max_pair_tokens_per_batch or (0 if gpu else AUTO_PAIR_TOKENS_CPU),
            max_batch_size=fold.max_batch_size,
            memory_budget=int(free_memory * fold.gpu_memory_fraction) if gpu else None,
            embedding_layers=embeddings.layers,
            embedding_dtype=embeddings.dtype,
            per_residue_embeddings=embeddings.per_residue,
            save_pae=fold.save_pae,
            artefact_max_plddt=fold.artefact_max_plddt,
        )

    def result_settings(self) -> dict[str, object]:
        """The settings that change what is recorded (a resume must share them); batch
        sizes and memory budgets change only how the work is cut."""
        skip = {"max_tokens", "max_pair_tokens", "max_batch_size", "memory_budget"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass(frozen=True)
class _Failure:
    """What is kept of a failed forward pass: its class and message, no references."""

    oom: bool
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> _Failure:
        """Classify ``exc``; raise :class:`SystemicFoldError` for a device fault."""
        if is_oom(exc):
            return cls(True, f"{type(exc).__name__}: {exc}")
        text = str(exc)
        if isinstance(exc, RuntimeError) and any(t in text for t in _SYSTEMIC_TEXTS):
            raise SystemicFoldError(f"device failure: {type(exc).__name__}: {text}") from exc
        return cls(False, f"{type(exc).__name__}: {text}")


def is_oom(exc: BaseException) -> bool:
    """An allocation failure: ``torch.OutOfMemoryError``, or a RuntimeError naming one
    (CUDA's "out of memory", ``CUBLAS_STATUS_ALLOC_FAILED``, cuDNN's allocation failures)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXTS)


class FoldEngine:
    """Folds batches with one loaded model; see the module docstring for recovery."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings, *, standalone_embedder: Any | None = None) -> None:
        from transformers.models.esm.openfold_utils import residue_constants as rc

        self.loaded = loaded
        self.model = loaded.model
        self.settings = settings
        self.embedder = standalone_embedder
        self.device = loaded.device
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.layers = resolve_layers(settings.embedding_layers, self.num_layers)
        self.memory = memory_model(self.model, loaded.lm_dtype)
        #: bytes one forward pass may use (None: not limited); lowered after an OOM
        self.budget = settings.memory_budget
        self._order = rc.restype_order_with_x
        self._captured: dict[int, torch.Tensor] | None = None
        # with a stand-alone embedder the hidden states of ESMFold's pass are not needed
        self._hook = None if standalone_embedder is not None else self.model.esm.register_forward_hook(self._capture)
        self.consecutive_failures = 0

    def _capture(self, module: Any, inputs: Any, output: Any) -> None:
        hidden = output.hidden_states
        self._captured = {layer: hidden[layer] for layer in self.layers}

    def close(self) -> None:
        """Remove the hook on the language model."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @property
    def embedding_dim(self) -> int:
        """Width of the stored embeddings."""
        return self.embedder.dim if self.embedder is not None else int(self.model.config.hidden_size)

    @property
    def embedding_layers(self) -> tuple[int, ...]:
        """ESM-2 layers stored (non-negative indices)."""
        return self.embedder.layers if self.embedder is not None else self.layers

    # ------------------------------------------------------------------ batching
    def _growth_chunk(self) -> int | None:
        """The chunk size a batch is sized for while it grows (auto: unchunked on GPUs)."""
        cs = self.settings.chunk_size
        if cs == "auto":
            return AUTO_CHUNK_CPU if self.device.type == "cpu" else None
        return cs  # type: ignore[return-value]

    def fits(self, batch: int, lmax: int) -> bool:
        """Whether ``batch`` sequences padded to ``lmax`` fit every budget."""
        s = self.settings
        if batch > s.max_batch_size or batch * lmax > s.max_tokens:
            return False
        if s.max_pair_tokens and batch * lmax * lmax > s.max_pair_tokens:
            return False
        return self.budget is None or self.memory.estimate(batch, lmax, self._growth_chunk()) <= self.budget

    def batches(self, items: Sequence[SeqItem]) -> Iterator[list[SeqItem]]:
        """Consecutive batches of ``items`` (best sorted by length), each planned when it
        is needed, so a budget lowered after an out-of-memory error applies to the rest."""
        items = list(items)
        lengths = [it.length for it in items]
        start = 0
        while start < len(items):
            end = next_batch_end(lengths, start, self.fits)
            yield items[start:end]
            start = end

    def chunk_size_for(self, batch: int, lmax: int) -> int | None:
        """Trunk chunk size for ``batch`` sequences whose longest has ``lmax`` residues:
        the setting, or with ``auto`` 64 on the CPU and on a GPU none if the batch fits
        the memory budget unchunked, else the largest size that fits."""
        cs = self.settings.chunk_size
        if cs != "auto":
            return cs  # type: ignore[return-value]
        if self.device.type == "cpu":
            return AUTO_CHUNK_CPU
        if self.budget is None:
            return 128 if lmax >= AUTO_CHUNK_MIN_LENGTH else None
        return self.memory.chunk_for(batch, lmax, self.budget)

    # ------------------------------------------------------------------ recovery
    def predict(self, items: Sequence[SeqItem]) -> list[Prediction]:
        """Fold a batch; never drops a sequence (failures come back as records)."""
        items = list(items)
        preds = self._predict(items, self.chunk_size_for(len(items), max(it.length for it in items)))
        for p in preds:
            self._count(p)
        return preds

    def _count(self, p: Prediction) -> None:
        if p.status == Status.OK:
            self.consecutive_failures = 0
        elif p.status == Status.ERROR:  # oom: a sequence too long for this device, not a fault
            self.consecutive_failures += 1
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                raise SystemicFoldError(
                    f"{self.consecutive_failures} sequences failed in a row (last: {p.error}); stopping: the fault is not in the sequences"
                )

    def _attempt(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction] | _Failure:
        """One forward pass; a failure comes back as a :class:`_Failure` once the
        ``except`` block is left, so nothing of the failed pass stays referenced."""
        try:
            return self.forward_batch(items, chunk_size)
        except Exception as exc:  # noqa: BLE001 - classified by _Failure.of
            return _Failure.of(exc)

    def _predict(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction]:
        outcome = self._attempt(items, chunk_size)
        if not isinstance(outcome, _Failure):
            return outcome
        self._free()
        lmax = max(it.length for it in items)
        if outcome.oom:
            self._lower_budget(len(items), lmax, chunk_size)
        if len(items) > 1:
            mid = len(items) // 2
            log.warning("%s in a batch of %d (longest %d): splitting", "out of memory" if outcome.oom else outcome.message, len(items), lmax)
            halves = items[:mid], items[mid:]
            return [p for half in halves for p in self._predict(half, self._split_chunk(half, chunk_size))]
        item = items[0]
        if not outcome.oom:
            log.warning("sequence %s failed: %s", item.checksum, outcome.message)
            return [Prediction.failed(item, Status.ERROR, outcome.message, chunk_size=chunk_size)]
        return [self._retry_smaller_chunks(item, chunk_size, outcome.message)]

    def _split_chunk(self, half: list[SeqItem], chunk_size: int | None) -> int | None:
        """Chunk size of half a failed batch: planned afresh (with the lowered budget),
        never larger than the failed one's."""
        planned = self.chunk_size_for(len(half), max(it.length for it in half))
        if chunk_size is None:
            return planned
        return chunk_size if planned is None else min(planned, chunk_size)

    def _retry_smaller_chunks(self, item: SeqItem, chunk_size: int | None, last: str) -> Prediction:
        """One sequence that ran out of memory, retried with smaller trunk chunk sizes."""
        for smaller in CHUNK_SIZE_FALLBACKS:
            if chunk_size is not None and smaller >= chunk_size:
                continue
            log.warning("out of memory on %s (%d aa): retrying with chunk size %d", item.checksum, item.length, smaller)
            outcome = self._attempt([item], smaller)
            if not isinstance(outcome, _Failure):
                return outcome[0]
            self._free()
            if not outcome.oom:
                return Prediction.failed(item, Status.ERROR, outcome.message, chunk_size=smaller)
            last = outcome.message
        log.error("sequence %s (%d aa) does not fit in memory even with chunk size 32", item.checksum, item.length)
        smallest = CHUNK_SIZE_FALLBACKS[-1]
        return Prediction.failed(item, Status.OOM, f"out of memory at chunk size {smallest}: {last}", chunk_size=smallest)

    def _lower_budget(self, batch: int, lmax: int, chunk_size: int | None) -> None:
        """After an out-of-memory error on a batch the memory model said would fit, trust
        the model less for the rest of the job."""
        if self.budget is None:
            return
        estimate = self.memory.estimate(batch, lmax, chunk_size)
        if estimate > self.budget:
            return  # known not to fit (a sequence alone over the budget): nothing learnt
        lowered = int(estimate * OOM_BUDGET_FACTOR)
        log.warning(
            "out of memory on %d x %d aa (chunk size %s) estimated at %.3g GiB, within the memory budget of %.3g GiB: "
            "memory budget lowered to %.3g GiB for the rest of the job",
            batch, lmax, chunk_size, estimate / 2**30, self.budget / 2**30, lowered / 2**30,
        )  # fmt: skip
        self.budget = lowered

    def _free(self) -> None:
        """Release what a failed pass left: captured states and, on a GPU, unreachable
        cycles and the allocator's cached blocks. (The failed pass's tensors are already
        unreferenced: the ``except`` block was left; the CPU tests check it without gc.)"""
        self._captured = None
        if self.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ forward
    def _encode(self, items: list[SeqItem]) -> tuple[torch.Tensor, torch.Tensor]:
        lmax = max(it.length for it in items)
        unk = self._order["X"]
        aatype = torch.zeros((len(items), lmax), dtype=torch.long)
        mask = torch.zeros((len(items), lmax), dtype=torch.long)
        for i, it in enumerate(items):
            codes = [self._order.get(c, unk) for c in it.sequence]
            aatype[i, : it.length] = torch.tensor(codes, dtype=torch.long)
            mask[i, : it.length] = 1
        return aatype.to(self.device), mask.to(self.device)

    def forward_batch(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction]:
        """One forward pass at trunk chunk size ``chunk_size``, without recovery (benchmarks)."""
        faults.before_forward([it.checksum for it in items], [it.length for it in items], chunk_size)
        started = time.perf_counter()
        host = self._to_host(items, *self._run_model(items, chunk_size))
        seconds = (time.perf_counter() - started) / len(items)
        return predictions_from_output(
            items, host, chunk_size=chunk_size, seconds=seconds,
            save_pae=self.settings.save_pae, artefact_max_plddt=self.settings.artefact_max_plddt,
        )  # fmt: skip

    @torch.inference_mode()
    def _run_model(self, items: list[SeqItem], chunk_size: int | None) -> tuple[dict, Any, torch.Tensor]:
        """The forward pass: the model's outputs, the language model's hidden states, aatype."""
        self.model.trunk.set_chunk_size(chunk_size)
        aatype, mask = self._encode(items)
        B, L = aatype.shape
        position_ids = torch.arange(L, device=self.device).expand(B, -1)
        self._captured = None
        out = self.model(aatype, attention_mask=mask, position_ids=position_ids, num_recycles=self.settings.num_recycles)
        hidden, self._captured = self._captured, None
        return out, hidden, aatype

    @torch.inference_mode()
    def _to_host(self, items: list[SeqItem], out: dict, hidden: Any, aatype: torch.Tensor) -> HostOutput:
        """Per-sequence pTM and embeddings on the device, then everything to the host once."""
        from transformers.models.esm.openfold_utils.feats import atom14_to_atom37
        from transformers.models.esm.openfold_utils.loss import compute_tm

        lengths = [it.length for it in items]
        ptm = torch.stack(
            [
                compute_tm(out["ptm_logits"][i : i + 1, :n, :n].float(), max_bin=PTM_MAX_BIN, no_bins=PTM_NO_BINS).reshape(())
                for i, n in enumerate(lengths)
            ]
        )
        if self.embedder is not None:
            emb_src = self.embedder.embed([it.sequence for it in items])
        else:
            emb_src = {layer: [hidden[layer][i, 1 : n + 1].float() for i, n in enumerate(lengths)] for layer in self.layers}
        return HostOutput(
            positions=atom14_to_atom37(out["positions"][-1], out).float().cpu().numpy(),  # (B, L, 37, 3)
            atom_exists=out["atom37_atom_exists"].bool().cpu().numpy(),  # (B, L, 37), padding already zero
            atom_plddt=out["plddt"].float().cpu().numpy(),  # (B, L, 37), 0-1
            pae=out["predicted_aligned_error"].float().cpu().numpy(),  # (B, L, L)
            ptm=ptm.float().cpu().numpy(),
            aatype=aatype.cpu().numpy(),
            pooled={layer: [t.mean(0).cpu().numpy() for t in ts] for layer, ts in emb_src.items()},
            per_residue={layer: [t.cpu().numpy() for t in ts] for layer, ts in emb_src.items()} if self.settings.per_residue_embeddings else {},
            frames=out["frames"][-1].float().cpu().numpy(),  # (B, L, 7): backbone of unknown residues (X)
            psi=out["angles"][-1][..., 2, :].float().cpu().numpy(),  # (B, L, 2)
        )
