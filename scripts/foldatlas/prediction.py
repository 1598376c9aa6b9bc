"""What one fold records per sequence, computed from a forward pass's host arrays.

:func:`predictions_from_output` is pure NumPy: it takes the batch's outputs already
copied to the host (:class:`HostOutput`) and crops, averages and flags them per
sequence, so it is tested without a model and shared by every engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .status import Status
from .structures import UNKNOWN, UNKNOWN_ATOMS, unknown_backbone

__all__ = ["CONFIDENT_PLDDT", "ARTEFACT_MIN_PTM", "SeqItem", "Prediction", "HostOutput", "predictions_from_output"]

#: pLDDT above which a residue counts as confident (``num_conf``; ESM Atlas, 0-1 scale).
CONFIDENT_PLDDT = 0.7
#: Artefact signature: pTM at least this high with mean pLDDT under the artefact pLDDT.
ARTEFACT_MIN_PTM = 0.99
#: Longest error message kept in a prediction.
MAX_ERROR_CHARS = 2000


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
    status: Status = Status.OK
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
    def failed(cls, item: SeqItem, status: Status, error: str, *, chunk_size: int | None = None) -> Prediction:
        """A record for a sequence that could not be folded (``oom`` or ``error``)."""
        return cls(item.checksum, item.length, status=status, error=error[:MAX_ERROR_CHARS], chunk_size=chunk_size)


@dataclass(frozen=True)
class HostOutput:
    """A batch's forward-pass outputs on the host, padded to the longest length Lmax.

    ``positions`` (B, Lmax, 37, 3) Angstrom; ``atom_exists`` (B, Lmax, 37) bool;
    ``atom_plddt`` (B, Lmax, 37) 0-1; ``pae`` (B, Lmax, Lmax) Angstrom; ``ptm`` (B,)
    computed per sequence; ``aatype`` (B, Lmax); ``pooled`` and ``per_residue``: layer ->
    one (D,) mean or (L_i, D) array per sequence (``per_residue`` may be empty).
    ``frames`` (B, Lmax, 7) and ``psi`` (B, Lmax, 2), the structure module's backbone
    frames and psi angles, give unknown residues (X) their backbone atoms (N, CA, C, O;
    see :func:`foldatlas.structures.unknown_backbone`); without them X has no atoms.
    """

    positions: np.ndarray
    atom_exists: np.ndarray
    atom_plddt: np.ndarray
    pae: np.ndarray
    ptm: np.ndarray
    aatype: np.ndarray
    pooled: dict[int, list[np.ndarray]]
    per_residue: dict[int, list[np.ndarray]]
    frames: np.ndarray | None = None
    psi: np.ndarray | None = None


def _with_unknown_backbone(host: HostOutput, i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and atom mask of sequence ``i``, cropped to ``n``, with the backbone of its
    unknown residues filled in from the frames (when the host output has them)."""
    pos = host.positions[i, :n].astype(np.float32)
    ex = host.atom_exists[i, :n].astype(bool)
    unk = np.nonzero(host.aatype[i, :n] == UNKNOWN)[0]
    if host.frames is None or host.psi is None or not len(unk):
        return pos, ex
    ex = ex.copy()
    pos[unk[:, None], list(UNKNOWN_ATOMS)] = unknown_backbone(host.frames[i, unk], host.psi[i, unk])
    ex[unk[:, None], list(UNKNOWN_ATOMS)] = True
    return pos, ex


def predictions_from_output(
    items: list[SeqItem],
    host: HostOutput,
    *,
    chunk_size: int | None,
    seconds: float,
    save_pae: bool,
    artefact_max_plddt: float,
) -> list[Prediction]:
    """One :class:`Prediction` per item, cropped to its length; ``seconds`` is the pass's
    wall time per sequence."""
    preds = []
    for i, it in enumerate(items):
        n = it.length
        positions, ex = _with_unknown_backbone(host, i, n)
        pl = host.atom_plddt[i, :n]
        ca = pl[:, 1].astype(np.float32)
        plddt_mean = float(pl[ex].mean()) if ex.any() else float(ca.mean())
        pae_i = host.pae[i, :n, :n]
        ptm_i = float(host.ptm[i])
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
                artefact=bool(ptm_i >= ARTEFACT_MIN_PTM and plddt_mean < artefact_max_plddt),
                batch_size=len(items),
                seconds=seconds,
                chunk_size=chunk_size,
                aatype=host.aatype[i, :n].astype(np.int16),
                positions=positions,
                atom_mask=ex,
                atom_plddt=pl.astype(np.float32),
                residue_plddt=ca,
                pae=pae_i.astype(np.float16) if save_pae else None,
                embeddings={layer: v[i].astype(np.float32) for layer, v in host.pooled.items()},
                residue_embeddings={layer: v[i] for layer, v in host.per_residue.items()},
            )
        )
    return preds
