"""The fold engine: ESMFold forward passes with out-of-memory recovery.

One :class:`FoldEngine` holds one loaded model for a whole job. :meth:`FoldEngine.predict`
folds a batch and extracts, per sequence and cropped to its length: atom positions,
per-atom pLDDT (0-1), pTM computed per sequence (transformers' batched ``ptm`` is one
number for the whole padded batch), PAE, and ESM-2 embeddings taken from the *same*
forward pass by a hook on the language model (``output_hidden_states`` is ignored by
``EsmForProteinFolding``).

Recovery: on CUDA out-of-memory the batch is split in halves, recursively; a single
sequence is retried with smaller trunk ``chunk_size`` (128, 64, 32) and recorded with
status ``oom`` if it still fails. Any other error is isolated the same way and recorded
with status ``error`` and its message. Errors that are not about one sequence (CUDA
faults, or :data:`MAX_CONSECUTIVE_FAILURES` failures in a row) stop the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import faults
from .batching import auto_pair_budget
from .errors import FoldatlasError
from .esm2 import resolve_layers
from .model import LoadedModel
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
    "EngineSettings",
    "SystemicFoldError",
    "FoldEngine",
]

log = logging.getLogger("foldatlas.engine")

#: Trunk chunk sizes tried, in order, for one sequence that ran out of memory.
CHUNK_SIZE_FALLBACKS = (128, 64, 32)
#: With ``fold.chunk_size: auto``, axial attention is chunked (128) from this length on
#: on GPUs; on the CPU it is always chunked (64), which is faster there (cache-sized
#: tiles: 3.3 s against 3.9 s unchunked for 40 sequences of 50-150 aa, tiny model).
AUTO_CHUNK_MIN_LENGTH = 600
AUTO_CHUNK_CPU = 64
#: Token budget per forward pass with ``fold.max_tokens_per_batch: 0``. On the CPU small
#: batches are much faster (40 sequences of 50-150 aa, tiny model: 3.9 s at 1024 tokens,
#: 15.3 s at 4096); GPUs want large batches.
AUTO_TOKENS_CPU, AUTO_TOKENS_GPU = 1024, 4096
#: Pair budget (B*L^2) with ``fold.max_pair_tokens_per_batch: 0`` on the CPU.
AUTO_PAIR_TOKENS_CPU = 1 << 20
#: Stop the job after this many sequences failed in a row: the fault is not theirs.
MAX_CONSECUTIVE_FAILURES = 16
#: PAE bins of ESMFold's pTM head (max_bin=31, 64 bins).
PTM_MAX_BIN, PTM_NO_BINS = 31, 64


class SystemicFoldError(FoldatlasError, RuntimeError):
    """A failure that is not about one sequence (the device, the model, the code)."""


@dataclass(frozen=True)
class EngineSettings:
    """What one fold job's engine needs, resolved for its device (no "auto" left but
    ``chunk_size``, which depends on each batch's longest sequence).

    ``num_recycles`` is the number of extra trunk passes (N recycles = N+1 passes).
    ``chunk_size`` chunks the trunk's axial attention (None: never; ``"auto"``: see
    :meth:`FoldEngine.chunk_size_for`). ``embedding_layers`` index ESM-2 hidden states
    (0 = embedding layer, -1 = last layer, after its final layer norm).
    """

    num_recycles: int
    chunk_size: int | str | None
    max_tokens: int
    max_pair_tokens: int
    max_batch_size: int
    embedding_layers: tuple[int, ...]
    embedding_dtype: str
    per_residue_embeddings: bool
    save_pae: bool
    artefact_max_plddt: float

    @classmethod
    def resolve(cls, fold: FoldSettings, embeddings: EmbeddingSettings, *, device_memory: int | None) -> EngineSettings:
        """Settings of a job on a device with ``device_memory`` bytes (None: the CPU).

        ``max_pair_tokens_per_batch: 0`` sizes the pair budget to the GPU's memory (2^20
        on the CPU); ``max_tokens_per_batch: 0`` is 4096 on a GPU and 1024 on the CPU.
        """
        pair = fold.max_pair_tokens_per_batch
        if pair == 0:
            pair = auto_pair_budget(device_memory, 128) if device_memory else AUTO_PAIR_TOKENS_CPU
        return cls(
            num_recycles=fold.num_recycles,
            chunk_size=fold.chunk_size,
            max_tokens=fold.max_tokens_per_batch or (AUTO_TOKENS_GPU if device_memory else AUTO_TOKENS_CPU),
            max_pair_tokens=pair,
            max_batch_size=fold.max_batch_size,
            embedding_layers=embeddings.layers,
            embedding_dtype=embeddings.dtype,
            per_residue_embeddings=embeddings.per_residue,
            save_pae=fold.save_pae,
            artefact_max_plddt=fold.artefact_max_plddt,
        )


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _is_systemic(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "CUDA error" in text or "device-side assert" in text or "illegal memory access" in text
    )


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
        self._order = rc.restype_order_with_x
        self._captured: Any = None
        self._hook = self.model.esm.register_forward_hook(self._capture)
        self.consecutive_failures = 0

    def _capture(self, module: Any, inputs: Any, output: Any) -> None:
        self._captured = output.hidden_states

    def close(self) -> None:
        """Remove the hook on the language model."""
        self._hook.remove()

    @property
    def embedding_dim(self) -> int:
        """Width of the stored embeddings."""
        return self.embedder.dim if self.embedder is not None else int(self.model.config.hidden_size)

    @property
    def embedding_layers(self) -> tuple[int, ...]:
        """ESM-2 layers stored (non-negative indices)."""
        return self.embedder.layers if self.embedder is not None else self.layers

    # ------------------------------------------------------------------ batching
    def chunk_size_for(self, lmax: int) -> int | None:
        """Trunk chunk size for a batch whose longest sequence has ``lmax`` residues."""
        cs = self.settings.chunk_size
        if cs == "auto":
            if self.device.type == "cpu":
                return AUTO_CHUNK_CPU
            return 128 if lmax >= AUTO_CHUNK_MIN_LENGTH else None
        return cs  # type: ignore[return-value]

    def predict(self, items: Sequence[SeqItem]) -> list[Prediction]:
        """Fold a batch; never drops a sequence (failures come back as records)."""
        items = list(items)
        preds = self._predict(items, self.chunk_size_for(max(it.length for it in items)))
        for p in preds:
            if p.status == Status.OK:
                self.consecutive_failures = 0
            else:
                self.consecutive_failures += 1
                if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    raise SystemicFoldError(
                        f"{self.consecutive_failures} sequences failed in a row (last: {p.status}: {p.error}); "
                        "stopping: the fault is not in the sequences"
                    )
        return preds

    def _predict(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction]:
        try:
            return self._forward(items, chunk_size)
        except Exception as exc:  # noqa: BLE001 - classified below
            if _is_systemic(exc) and not _is_oom(exc):
                raise SystemicFoldError(f"device failure: {exc}") from exc
            oom = _is_oom(exc)
            self._free()
            if len(items) > 1:
                mid = len(items) // 2
                log.warning(
                    "%s in a batch of %d (longest %d): splitting",
                    "out of memory" if oom else f"{type(exc).__name__}: {exc}",
                    len(items),
                    max(it.length for it in items),
                )
                return self._predict(items[:mid], chunk_size) + self._predict(items[mid:], chunk_size)
            item = items[0]
            if not oom:
                log.warning("sequence %s failed: %s: %s", item.checksum, type(exc).__name__, exc)
                return [Prediction.failed(item, Status.ERROR, f"{type(exc).__name__}: {exc}", chunk_size=chunk_size)]
            return [self._retry_smaller_chunks(item, chunk_size, str(exc))]

    def _retry_smaller_chunks(self, item: SeqItem, chunk_size: int | None, last: str) -> Prediction:
        """One sequence that ran out of memory, retried with smaller trunk chunk sizes."""
        for smaller in CHUNK_SIZE_FALLBACKS:
            if chunk_size is not None and smaller >= chunk_size:
                continue
            log.warning("out of memory on %s (%d aa): retrying with chunk size %d", item.checksum, item.length, smaller)
            try:
                return self._forward([item], smaller)[0]
            except Exception as exc2:  # noqa: BLE001
                if not _is_oom(exc2):
                    if _is_systemic(exc2):
                        raise SystemicFoldError(f"device failure: {exc2}") from exc2
                    return Prediction.failed(item, Status.ERROR, f"{type(exc2).__name__}: {exc2}", chunk_size=smaller)
                last = str(exc2)
                self._free()
        log.error("sequence %s (%d aa) does not fit in memory even with chunk size 32", item.checksum, item.length)
        smallest = CHUNK_SIZE_FALLBACKS[-1]
        return Prediction.failed(item, Status.OOM, f"out of memory at chunk size {smallest}: {last}", chunk_size=smallest)

    def _free(self) -> None:
        self._captured = None
        if self.device.type == "cuda":
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

    def _forward(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction]:
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
        )
