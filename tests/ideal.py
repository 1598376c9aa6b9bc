"""Ideal protein geometry for tests: chains that Foldcomp, gemmi and foldseek take as real.

The tiny random model's chains are broken (peptide bonds of 10-100 A), which no
structure compressor can represent; these chains have ideal bond lengths and angles
(Engh & Huber) and alpha-helical torsions.
"""

from __future__ import annotations

import numpy as np

from foldatlas.structures import UNKNOWN, UNKNOWN_ATOMS, pdb_text

GLY = 7  # aatype of glycine (backbone atoms N, CA, C, O only)


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float) -> np.ndarray:
    """NeRF: the atom d bonded to c (``bond`` A), with angle b-c-d and torsion a-b-c-d in degrees."""
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    ang, tor = np.radians(angle), np.radians(torsion)
    return c + m @ np.array([-bond * np.cos(ang), bond * np.sin(ang) * np.cos(tor), bond * np.sin(ang) * np.sin(tor)])


def ideal_backbone(n: int, phi: float | np.ndarray = -57.0, psi: float | np.ndarray = -47.0) -> np.ndarray:
    """(n, 4, 3) N, CA, C, O of an ideal chain (an alpha helix by default; ``phi`` and
    ``psi`` one torsion for all residues or one per residue), Angstrom."""
    phi, psi = np.broadcast_to(phi, n), np.broadcast_to(psi, n)
    prev = (np.array([-1.458, 0.0, 0.0]), np.zeros(3), np.array([0.55, 1.42, 0.0]))
    out = np.zeros((n, 4, 3))
    for i in range(n):
        if i:
            N = _place(prev[0], prev[1], prev[2], 1.329, 116.2, psi[i - 1])
            CA = _place(prev[1], prev[2], N, 1.458, 121.7, 180.0)
            C = _place(prev[2], N, CA, 1.525, 111.2, phi[i])
            prev = (N, CA, C)
        out[i, :3] = prev
        out[i, 3] = _place(prev[0], prev[1], prev[2], 1.231, 120.5, psi[i] + 180.0)
    return out


def fold_torsions(rng: np.random.Generator, length: int) -> np.ndarray:
    """(length, 2) phi, psi of a made-up fold: segments (mean length 12) of helix, strand,
    polyproline and loop, so that unrelated folds do not align."""
    states = np.array([(-57.0, -47.0), (-120.0, 130.0), (-75.0, 145.0), (-90.0, 0.0)])
    seg = np.cumsum(rng.random(length) < 1 / 12)
    return states[rng.integers(0, 4, seg[-1] + 1)[seg]] + rng.normal(0, 10, (length, 2))


def family_pdbs(families: int, members: int, *, seed: int = 0, length: tuple[int, int] = (60, 110)) -> list[list[str]]:
    """PDB texts of ``families`` made-up folds with ``members`` variants each (torsions
    +-4 degrees apart, a few residues trimmed): members of a family align, families do not."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(families):
        base = fold_torsions(rng, int(rng.integers(*length)))
        fam = []
        for _ in range(members):
            start, end = int(rng.integers(0, 4)), len(base) - int(rng.integers(0, 4))
            t = base[start:end] + rng.normal(0, 4, (end - start, 2))
            fam.append(ideal_pdb(len(t), torsions=t))
        out.append(fam)
    return out


def ideal_pdb(length: int, *, unknown: tuple[int, ...] = (), gap: tuple[int, ...] = (), plddt: float = 0.8, remarks: list[str] | None = None,
              torsions: np.ndarray | None = None) -> str:  # fmt: skip
    """PDB text of a glycine helix (or of a chain of ``torsions``, (length, 2) phi, psi);
    residues in ``unknown`` (0-based) are UNK with their backbone, residues in ``gap`` have
    no atoms (the X defect of foldatlas 0.2)."""
    aatype = np.full(length, GLY)
    aatype[list(unknown) + list(gap)] = UNKNOWN
    pos, mask = np.zeros((length, 37, 3)), np.zeros((length, 37), dtype=bool)
    pos[:, list(UNKNOWN_ATOMS)] = ideal_backbone(length) if torsions is None else ideal_backbone(length, torsions[:, 0], torsions[:, 1])
    mask[:, list(UNKNOWN_ATOMS)] = True
    mask[list(gap)] = False
    return pdb_text(aatype, pos, mask, np.full((length, 37), plddt), remarks=remarks)
