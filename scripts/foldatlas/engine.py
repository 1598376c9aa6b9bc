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

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import FoldatlasError
from .model import LoadedModel

__all__ = [
    "CHUNK_SIZE_FALLBACKS",
    "AUTO_CHUNK_MIN_LENGTH",
    "ARTEFACT_MIN_PTM",
    "CONFIDENT_PLDDT",
    "FoldSettings",
    "FaultInjector",
    "SeqItem",
    "Prediction",
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
#: pLDDT above which a residue counts as confident (``num_conf``; ESM Atlas, 0-1 scale).
CONFIDENT_PLDDT = 0.7
#: Artefact signature: pTM at least this high with mean pLDDT under the artefact pLDDT.
ARTEFACT_MIN_PTM = 0.99
#: Stop the job after this many sequences failed in a row: the fault is not theirs.
MAX_CONSECUTIVE_FAILURES = 16
#: PAE bins of ESMFold's pTM head (max_bin=31, 64 bins).
PTM_MAX_BIN, PTM_NO_BINS = 31, 64


class SystemicFoldError(FoldatlasError, RuntimeError):
    """A failure that is not about one sequence (the device, the model, the code)."""


@dataclass(frozen=True)
class FoldSettings:
    """Per-job folding options (the ``fold`` and ``embeddings`` config sections).

    ``num_recycles`` is the number of extra trunk passes: N recycles = N+1 passes
    (ESMFold v1 was trained with 4). ``chunk_size`` chunks the trunk's axial attention
    (``None``: never; ``"auto"``: 128 from :data:`AUTO_CHUNK_MIN_LENGTH` residues on).
    ``embedding_layers`` index ESM-2 hidden states (0 = embedding layer, -1 = last layer,
    after its final layer norm).
    """

    num_recycles: int = 4
    chunk_size: int | str | None = "auto"
    max_tokens: int = 4096
    max_pair_tokens: int = 1 << 21
    max_batch_size: int = 64
    embedding_layers: tuple[int, ...] = (-1,)
    embedding_dtype: str = "float16"
    per_residue_embeddings: bool = False
    save_pae: bool = False
    artefact_max_plddt: float = 0.7


@dataclass(frozen=True)
class FaultInjector:
    """Injected failures for tests, from the JSON in ``FOLDATLAS_INJECT_FAULTS``.

    ``oom_tokens``: out-of-memory when a batch has more than this many padded tokens.
    ``oom_min_length`` with ``oom_max_chunk_size``: a sequence at least that long runs out
    of memory unless the trunk chunk size is at most ``oom_max_chunk_size`` (0: always).
    ``error_checksums``: a ``ValueError`` for any batch holding one of them.
    ``sleep_seconds``: sleep before each forward pass (to kill jobs mid-chunk).
    ``kill_at``: the process kills itself with SIGKILL at that point of a fold job:
    ``model_load`` (while loading the model), ``mid_batch`` (after the second batch was
    handed to the writer), ``archive`` (half-way through writing the chunk archive) or
    ``between_outputs`` (after the archive, before the tables).
    """

    oom_tokens: int | None = None
    oom_min_length: int | None = None
    oom_max_chunk_size: int = 0
    error_checksums: frozenset[str] = frozenset()
    sleep_seconds: float = 0.0
    kill_at: str | None = None

    def kill_point(self, point: str) -> None:
        """SIGKILL this process if ``point`` is the configured kill point."""
        if self.kill_at == point:
            import signal

            log.warning("injected fault: SIGKILL at %s", point)
            for handler in logging.getLogger("foldatlas").handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FaultInjector:
        """Read ``FOLDATLAS_INJECT_FAULTS`` (JSON object); none when unset."""
        raw = (environ if environ is not None else os.environ).get("FOLDATLAS_INJECT_FAULTS", "")
        if not raw:
            return cls()
        spec = json.loads(raw)
        spec["error_checksums"] = frozenset(spec.get("error_checksums", ()))
        return cls(**spec)

    def before_forward(self, items: Sequence[SeqItem], chunk_size: int | None) -> None:
        """Raise the configured failure for this batch, if any."""
        if self.sleep_seconds:
            time.sleep(self.sleep_seconds)
        lmax = max(it.length for it in items)
        if self.oom_tokens is not None and len(items) * lmax > self.oom_tokens:
            raise torch.OutOfMemoryError(f"injected: {len(items)} x {lmax} tokens > {self.oom_tokens}")
        if self.oom_min_length is not None and lmax >= self.oom_min_length:
            if self.oom_max_chunk_size == 0 or chunk_size is None or chunk_size > self.oom_max_chunk_size:
                raise torch.OutOfMemoryError(f"injected: length {lmax} with chunk size {chunk_size}")
        for it in items:
            if it.checksum in self.error_checksums:
                raise ValueError(f"injected error for {it.checksum}")


@dataclass(frozen=True)
class SeqItem:
    """One unique sequence to fold."""

    checksum: str
    sequence: str

    @property
    def length(self) -> int:
        return len(self.sequence)


@dataclass
class Prediction:
    """Everything recorded for one sequence; arrays are cropped to its length L.

    Confidence is on the 0-1 scale: ``plddt`` is the mean over existing atoms (as the
    ESM Atlas reports; the C-alpha mean if no atom exists), ``plddt_ca`` the C-alpha
    mean, ``residue_plddt`` the C-alpha pLDDT per residue. PAE is in Angstrom.
    """

    checksum: str
    length: int
    status: str = "ok"
    error: str = ""
    plddt: float = float("nan")
    plddt_ca: float = float("nan")
    ptm: float = float("nan")
    num_conf: int = 0
    max_pae: float = float("nan")
    mean_pae: float = float("nan")
    artefact: bool = False
    batch_size: int = 0
    seconds: float = 0.0
    chunk_size: int | None = None
    aatype: np.ndarray | None = None
    positions: np.ndarray | None = None  # (L, 37, 3) float32
    atom_mask: np.ndarray | None = None  # (L, 37) bool
    atom_plddt: np.ndarray | None = None  # (L, 37) float32, 0-1
    residue_plddt: np.ndarray | None = None  # (L,) float32, 0-1
    pae: np.ndarray | None = None  # (L, L) float16, Angstrom
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (D,) float32
    residue_embeddings: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (L, D)

    @classmethod
    def failed(cls, item: SeqItem, status: str, error: str, *, chunk_size: int | None = None) -> Prediction:
        """A record for a sequence that could not be folded."""
        return cls(item.checksum, item.length, status=status, error=error[:2000], chunk_size=chunk_size)


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

    def __init__(
        self,
        loaded: LoadedModel,
        settings: FoldSettings,
        *,
        injector: FaultInjector | None = None,
        standalone_embedder: Any | None = None,
    ) -> None:
        from transformers.models.esm.openfold_utils import residue_constants as rc

        self.loaded = loaded
        self.model = loaded.model
        self.settings = settings
        self.injector = injector or FaultInjector()
        self.embedder = standalone_embedder
        self.device = loaded.device
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.layers = tuple(self._resolve_layer(k) for k in settings.embedding_layers)
        self._order = rc.restype_order_with_x
        self._captured: Any = None
        self._hook = self.model.esm.register_forward_hook(self._capture)
        self.consecutive_failures = 0

    def _resolve_layer(self, k: int) -> int:
        n = self.num_layers
        if not -(n + 1) <= k <= n:
            raise FoldatlasError(f"embeddings.layers: layer {k} out of range for a {n}-layer ESM-2 (expected -{n + 1}..{n})")
        return k % (n + 1)

    def _capture(self, module: Any, inputs: Any, output: Any) -> None:
        self._captured = output.hidden_states

    def close(self) -> None:
        """Remove the hook on the language model."""
        self._hook.remove()

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
            if p.status == "ok":
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
                return [Prediction.failed(item, "error", f"{type(exc).__name__}: {exc}", chunk_size=chunk_size)]
            last = str(exc)
            for smaller in CHUNK_SIZE_FALLBACKS:
                if chunk_size is not None and smaller >= chunk_size:
                    continue
                log.warning("out of memory on %s (%d aa): retrying with chunk size %d", item.checksum, item.length, smaller)
                try:
                    return self._forward(items, smaller)
                except Exception as exc2:  # noqa: BLE001
                    if not _is_oom(exc2):
                        if _is_systemic(exc2):
                            raise SystemicFoldError(f"device failure: {exc2}") from exc2
                        msg = f"{type(exc2).__name__}: {exc2}"
                        return [Prediction.failed(item, "error", msg, chunk_size=smaller)]
                    last = str(exc2)
                    self._free()
            log.error("sequence %s (%d aa) does not fit in memory even with chunk size 32", item.checksum, item.length)
            return [Prediction.failed(item, "oom", f"out of memory at chunk size {CHUNK_SIZE_FALLBACKS[-1]}: {last}", chunk_size=CHUNK_SIZE_FALLBACKS[-1])]

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

    @torch.inference_mode()
    def _forward(self, items: list[SeqItem], chunk_size: int | None) -> list[Prediction]:
        from transformers.models.esm.openfold_utils.feats import atom14_to_atom37
        from transformers.models.esm.openfold_utils.loss import compute_tm

        self.injector.before_forward(items, chunk_size)
        started = time.perf_counter()
        self.model.trunk.set_chunk_size(chunk_size)
        aatype, mask = self._encode(items)
        B, L = aatype.shape
        position_ids = torch.arange(L, device=self.device).expand(B, -1)
        self._captured = None
        out = self.model(aatype, attention_mask=mask, position_ids=position_ids, num_recycles=self.settings.num_recycles)
        hidden = self._captured
        self._captured = None

        positions = atom14_to_atom37(out["positions"][-1], out)  # (B, L, 37, 3)
        exists = out["atom37_atom_exists"].bool()  # (B, L, 37), padding already zero
        plddt = out["plddt"].float()  # (B, L, 37), 0-1
        pae = out["predicted_aligned_error"].float()  # (B, L, L)
        lengths = [it.length for it in items]
        ptm = torch.stack(
            [
                compute_tm(out["ptm_logits"][i : i + 1, :n, :n].float(), max_bin=PTM_MAX_BIN, no_bins=PTM_NO_BINS).reshape(())
                for i, n in enumerate(lengths)
            ]
        )
        emb_src: dict[int, list[torch.Tensor]] = {}
        if self.embedder is not None:
            emb_src = self.embedder.embed([it.sequence for it in items])
        else:
            for layer in self.layers:
                h = hidden[layer]
                emb_src[layer] = [h[i, 1 : n + 1].float() for i, n in enumerate(lengths)]

        # move everything needed to the host once
        positions_h = positions.float().cpu().numpy()
        exists_h = exists.cpu().numpy()
        plddt_h = plddt.cpu().numpy()
        pae_h = pae.cpu().numpy()
        ptm_h = ptm.float().cpu().numpy()
        aatype_h = aatype.cpu().numpy()
        pooled = {layer: [t.mean(0).cpu().numpy() for t in ts] for layer, ts in emb_src.items()}
        per_res = (
            {layer: [t.cpu().numpy() for t in ts] for layer, ts in emb_src.items()}
            if self.settings.per_residue_embeddings
            else {}
        )
        seconds = (time.perf_counter() - started) / len(items)

        preds = []
        for i, (it, n) in enumerate(zip(items, lengths)):
            ex = exists_h[i, :n]
            pl = plddt_h[i, :n]
            ca = pl[:, 1].astype(np.float32)
            n_atoms = int(ex.sum())
            plddt_mean = float(pl[ex].mean()) if n_atoms else float(ca.mean())
            pae_i = pae_h[i, :n, :n]
            ptm_i = float(ptm_h[i])
            preds.append(
                Prediction(
                    checksum=it.checksum,
                    length=n,
                    plddt=plddt_mean,
                    plddt_ca=float(ca.mean()),
                    ptm=ptm_i,
                    num_conf=int((ca > CONFIDENT_PLDDT).sum()),
                    max_pae=float(pae_i.max()),
                    mean_pae=float(pae_i.mean()),
                    artefact=bool(ptm_i >= ARTEFACT_MIN_PTM and plddt_mean < self.settings.artefact_max_plddt),
                    batch_size=len(items),
                    seconds=seconds,
                    chunk_size=chunk_size,
                    aatype=aatype_h[i, :n].astype(np.int16),
                    positions=positions_h[i, :n].astype(np.float32),
                    atom_mask=ex,
                    atom_plddt=pl.astype(np.float32),
                    residue_plddt=ca,
                    pae=pae_i.astype(np.float16) if self.settings.save_pae else None,
                    embeddings={layer: v[i].astype(np.float32) for layer, v in pooled.items()},
                    residue_embeddings={layer: v[i] for layer, v in per_res.items()},
                )
            )
        return preds
