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


def ideal_backbone(n: int, phi: float = -57.0, psi: float = -47.0) -> np.ndarray:
    """(n, 4, 3) N, CA, C, O of an ideal chain (an alpha helix by default), Angstrom."""
    prev = (np.array([-1.458, 0.0, 0.0]), np.zeros(3), np.array([0.55, 1.42, 0.0]))
    out = np.zeros((n, 4, 3))
    for i in range(n):
        if i:
            N = _place(prev[0], prev[1], prev[2], 1.329, 116.2, psi)
            CA = _place(prev[1], prev[2], N, 1.458, 121.7, 180.0)
            C = _place(prev[2], N, CA, 1.525, 111.2, phi)
            prev = (N, CA, C)
        out[i, :3] = prev
        out[i, 3] = _place(prev[0], prev[1], prev[2], 1.231, 120.5, psi + 180.0)
    return out


def ideal_pdb(length: int, *, unknown: tuple[int, ...] = (), gap: tuple[int, ...] = (), plddt: float = 0.8, remarks: list[str] | None = None) -> str:
    """PDB text of a glycine helix; residues in ``unknown`` (0-based) are UNK with their
    backbone, residues in ``gap`` have no atoms (the X defect of foldatlas 0.2)."""
    aatype = np.full(length, GLY)
    aatype[list(unknown) + list(gap)] = UNKNOWN
    pos, mask = np.zeros((length, 37, 3)), np.zeros((length, 37), dtype=bool)
    pos[:, list(UNKNOWN_ATOMS)] = ideal_backbone(length)
    mask[:, list(UNKNOWN_ATOMS)] = True
    mask[list(gap)] = False
    return pdb_text(aatype, pos, mask, np.full((length, 37), plddt), remarks=remarks)
