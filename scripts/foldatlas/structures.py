"""PDB text from predicted atom positions, and the names of structures in archives.

PDB B-factors carry per-atom pLDDT on the **0-100** scale, as esm-fold, the AlphaFold
Database and foldseek (``--mask-bfactor-threshold``) expect; transformers' own
``output_to_pdb`` writes 0-1 values and a TER line naming a padding residue in padded
batches, so foldatlas writes PDB text itself, one sequence at a time, cropped to its
length. Files and archive members are named by sequence checksum, never by header text.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["ATOM_TYPES", "RESTYPES", "pdb_text", "member_name", "safe_member_name"]

#: atom37 order of AlphaFold/openfold (``residue_constants.atom_types``).
ATOM_TYPES = (
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2", "ND1",
    "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1", "OE2", "CH2",
    "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3", "NZ", "OXT",
)  # fmt: skip
#: aatype order: 20 standard residues (openfold's ``restypes``) then X.
RESTYPES = "ARNDCQEGHILKMFPSTWYV"
_THREE = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
    "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
    "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}  # fmt: skip
_RES3 = [_THREE[r] for r in RESTYPES] + ["UNK"]
_NAMES = [(n if len(n) == 4 else f" {n}").ljust(4) for n in ATOM_TYPES]
_ELEMENTS = [n[0] for n in ATOM_TYPES]
_CHECKSUM = re.compile(r"^[0-9a-f]{32}$")


def pdb_text(
    aatype: np.ndarray,
    positions: np.ndarray,
    atom_mask: np.ndarray,
    atom_plddt: np.ndarray,
    *,
    remarks: list[str] | None = None,
) -> str:
    """PDB text of one chain A.

    Parameters
    ----------
    aatype : (L,) int
        Residue types in :data:`RESTYPES` order, 20 = unknown (written ``UNK``).
    positions : (L, 37, 3) float
        atom37 coordinates in Angstrom.
    atom_mask : (L, 37) bool or float
        Which atoms exist (unknown residues have none).
    atom_plddt : (L, 37) float
        Per-atom pLDDT on the 0-1 scale; written as 0-100 B-factors.
    remarks
        ``REMARK 250`` lines (no FASTA text goes here).
    """
    L = int(aatype.shape[0])
    lines = [f"REMARK 250 {r}"[:80] for r in (remarks or [])]
    exists = np.asarray(atom_mask) > 0.5
    bfac = np.clip(np.asarray(atom_plddt, dtype=np.float64) * 100.0, 0.0, 100.0)
    res_idx, atom_idx = np.nonzero(exists)
    xyz = np.asarray(positions, dtype=np.float64)[res_idx, atom_idx]
    b = bfac[res_idx, atom_idx]
    serial = 0
    for k in range(len(res_idx)):
        serial += 1
        r = int(res_idx[k])
        a = int(atom_idx[k])
        x, y, z = xyz[k]
        lines.append(
            f"ATOM  {serial:>5} {_NAMES[a]} {_RES3[aatype[r]]:>3} A{r + 1:>4}    "
            f"{x:>8.3f}{y:>8.3f}{z:>8.3f}{1.0:>6.2f}{b[k]:>6.2f}          {_ELEMENTS[a]:>2}  "
        )
    if L:
        serial += 1
        lines.append(f"TER   {serial:>5}      {_RES3[aatype[L - 1]]:>3} A{L:>4}")
    lines.append("END")
    lines.append("")
    return "\n".join(lines)


def member_name(checksum: str) -> str:
    """Archive member (and file) name of a structure: ``<checksum>.pdb``."""
    return f"{safe_member_name(checksum)}.pdb"


def safe_member_name(checksum: str) -> str:
    """Check that ``checksum`` is 32 lower-case hex digits (so it can name a file) and return it."""
    if not _CHECKSUM.match(checksum):
        raise ValueError(f"expected a 32-digit lower-case hex checksum, found {checksum!r}")
    return checksum
