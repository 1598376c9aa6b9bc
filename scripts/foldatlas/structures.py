"""Structure files from predicted atom positions, and the names of structures in archives.

PDB B-factors carry per-atom pLDDT on the **0-100** scale, as esm-fold, the AlphaFold
Database and foldseek (``--mask-bfactor-threshold``) expect; transformers' own
``output_to_pdb`` writes 0-1 values and a TER line naming a padding residue in padded
batches, so foldatlas writes PDB text itself, one sequence at a time, cropped to its
length. Files and archive members are named by sequence checksum, never by header text.

**Unknown residues** (X, and B, Z, U, O, which ESMFold folds as X) are written as ``UNK``
with four backbone atoms, N, CA, C and O, so that residue numbers and the chain length
always match the sequence. transformers' ESMFold gives residue type X no atom at all
(its atom tables are empty for X), but the structure module predicts a backbone frame
and a psi angle for every residue: :func:`unknown_backbone` places N, CA and C from the
frame and O from psi, exactly as ESMFold places them for alanine (checked against the
model's own atoms). No CB is written: the side chain of an unknown residue is unknown
(a glycine has none).

:func:`modelcif_text` writes the same model as ModelCIF (mmCIF) with the ``modelcif``
package: per-residue pLDDT as the local QA metric, pLDDT and pTM as global ones, and the
model and software recorded, as the AlphaFold Database's files do.
"""

from __future__ import annotations

import io
import re

import ihm
import modelcif
import modelcif.dumper
import modelcif.model
import modelcif.protocol
import modelcif.qa_metric
import numpy as np

__all__ = [
    "ATOM_TYPES",
    "RESTYPES",
    "UNKNOWN",
    "UNKNOWN_ATOMS",
    "FORMATS",
    "pdb_text",
    "modelcif_text",
    "unknown_backbone",
    "member_name",
    "safe_member_name",
]

#: atom37 order of AlphaFold/openfold (``residue_constants.atom_types``).
ATOM_TYPES = (
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2", "ND1",
    "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1", "OE2", "CH2",
    "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3", "NZ", "OXT",
)  # fmt: skip
#: aatype order: 20 standard residues (openfold's ``restypes``) then X.
RESTYPES = "ARNDCQEGHILKMFPSTWYV"
#: aatype of an unknown residue (X; B, Z, U and O are folded as X).
UNKNOWN = len(RESTYPES)
#: Structure file formats, as ``structures.formats`` names them, and their member suffixes.
FORMATS = {"pdb": ".pdb.gz", "cif": ".cif.gz"}
_THREE = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
    "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
    "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}  # fmt: skip
_RES3 = [_THREE[r] for r in RESTYPES] + ["UNK"]
_NAMES = [(n if len(n) == 4 else f" {n}").ljust(4) for n in ATOM_TYPES]
_ELEMENTS = [n[0] for n in ATOM_TYPES]
_CHECKSUM = re.compile(r"^[0-9a-f]{32}$")

# Alanine's ideal backbone in its backbone frame, and O in its psi frame (openfold's
# residue_constants.rigid_group_atom_positions["ALA"]), in Angstrom.
_ALA_N = np.array([-0.525, 1.363, 0.0])
_ALA_C = np.array([1.526, 0.0, 0.0])
_ALA_O = np.array([0.627, 1.062, 0.0])
#: atom37 slots written for an unknown residue: N, CA, C, O.
UNKNOWN_ATOMS = (0, 1, 2, 4)


def _psi_frame() -> np.ndarray:
    """Rotation of the psi frame in the backbone frame (openfold's default frame, group 3)."""
    e0 = _ALA_C / np.linalg.norm(_ALA_C)
    ey = -_ALA_N
    e1 = ey - (ey @ e0) * e0
    e1 /= np.linalg.norm(e1)
    return np.stack([e0, e1, np.cross(e0, e1)], axis=-1)


_PSI_FRAME = _psi_frame()


def _rotations(quaternions: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices of (n, 4) quaternions (w, x, y, z), normalised first."""
    q = quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def unknown_backbone(frames: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Backbone atoms N, CA, C, O of residues from ESMFold's predicted frames and psi angles.

    Parameters
    ----------
    frames : (n, 7) float
        Backbone frames as the structure module returns them (``out["frames"][-1]``):
        quaternion (w, x, y, z) then translation in Angstrom (the C-alpha).
    psi : (n, 2) float
        The psi torsion as (sin, cos) (``out["angles"][-1][..., 2, :]``).

    Returns
    -------
    (n, 4, 3) float64
        N, CA, C, O in Angstrom, placed with alanine's ideal geometry (as ESMFold does).
    """
    frames = np.asarray(frames, dtype=np.float64)
    rot, trans = _rotations(frames[:, :4]), frames[:, 4:]
    sc = np.asarray(psi, dtype=np.float64)
    sc = sc / np.linalg.norm(sc, axis=-1, keepdims=True)
    s, c = sc[:, 0], sc[:, 1]
    o_psi = np.stack([np.full_like(s, _ALA_O[0]), c * _ALA_O[1] - s * _ALA_O[2], s * _ALA_O[1] + c * _ALA_O[2]], -1)
    local = np.stack(
        [np.broadcast_to(_ALA_N, o_psi.shape), np.zeros_like(o_psi), np.broadcast_to(_ALA_C, o_psi.shape), o_psi @ _PSI_FRAME.T + _ALA_C],
        axis=1,
    )  # (n, 4, 3) in the backbone frame
    return np.einsum("nij,naj->nai", rot, local) + trans[:, None, :]


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
        Which atoms exist (an unknown residue has N, CA, C and O when its backbone was
        filled in by :func:`unknown_backbone`).
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


def modelcif_text(
    aatype: np.ndarray,
    positions: np.ndarray,
    atom_mask: np.ndarray,
    atom_plddt: np.ndarray,
    *,
    checksum: str,
    ptm: float,
    model_id: str,
    model_version: str,
    software_version: str,
) -> str:
    """ModelCIF (mmCIF) text of one chain A, written with the ``modelcif`` package.

    Atoms and B-factors are those of :func:`pdb_text`. QA metrics: pLDDT per residue
    (C-alpha, 0-100; ``_ma_qa_metric_local``), the mean over residues and pTM (0-1;
    ``_ma_qa_metric_global``). The model (``model_id``, ``model_version``) and foldatlas
    (``software_version``) are recorded as the software of the modelling step, as the
    AlphaFold Database records AlphaFold. The atoms are formatted by
    :func:`_atom_site_loop` (the rows python-ihm would write, four times faster), so the
    modelcif document is written without its check that every chain has coordinates.
    """
    system = _modelcif_system(aatype, positions, atom_mask, atom_plddt, checksum=checksum, ptm=ptm,
                              model_id=model_id, model_version=model_version, software_version=software_version, atoms=False)  # fmt: skip
    out = io.StringIO()
    modelcif.dumper.write(out, [system], check=False)
    return out.getvalue() + _atom_site_loop(aatype, positions, atom_mask, atom_plddt)


def _modelcif_system(
    aatype: np.ndarray, positions: np.ndarray, atom_mask: np.ndarray, atom_plddt: np.ndarray, *,
    checksum: str, ptm: float, model_id: str, model_version: str, software_version: str, atoms: bool,
) -> modelcif.System:  # fmt: skip
    """The modelcif document of one model; with ``atoms``, its atoms as modelcif objects."""
    alphabet = ihm.LPeptideAlphabet()
    unk = ihm.LPeptideChemComp(id="UNK", code="UNK", code_canonical="X", name="UNKNOWN")
    seq = [unk if a >= UNKNOWN else alphabet[RESTYPES[a]] for a in np.asarray(aatype)]
    system = modelcif.System(title=f"ESMFold prediction of sequence {safe_member_name(checksum)}", id=checksum.upper())
    asym = modelcif.AsymUnit(modelcif.Entity(seq, description=f"sequence {checksum} (MD5)"), details="Model subunit A", id="A")
    esmfold = modelcif.Software(
        name="ESMFold", classification="model building", description="Structure prediction from a single sequence",
        location="https://github.com/facebookresearch/esm", type="package", version=f"{model_id} ({model_version})",
    )  # fmt: skip
    foldatlas = modelcif.Software(
        name="foldatlas", classification="data collection", description="Atlas workflow that ran ESMFold and wrote this file",
        location="not published", type="package", version=software_version,
    )  # fmt: skip
    model = _Model(_atoms(asym, positions, atom_mask, atom_plddt) if atoms else [], assembly=modelcif.Assembly([asym], name="Modeled assembly"), name="ESMFold model")
    ca = np.clip(np.asarray(atom_plddt, dtype=np.float64)[:, 1] * 100.0, 0.0, 100.0)
    model.qa_metrics.append(_GlobalPLDDT(round(float(ca.mean()), 2) if len(ca) else 0.0))
    model.qa_metrics.append(_GlobalPTM(round(float(ptm), 4)))
    model.qa_metrics.extend(_LocalPLDDT(asym.residue(i + 1), round(float(v), 2)) for i, v in enumerate(ca))
    group = modelcif.model.ModelGroup([model], name="ESMFold prediction")
    system.model_groups.append(group)
    protocol = modelcif.protocol.Protocol()
    protocol.steps.append(modelcif.protocol.ModelingStep(input_data=None, output_data=group, software=modelcif.SoftwareGroup([esmfold, foldatlas]), name="ESMFold"))
    system.protocols.append(protocol)
    return system


def _atoms(asym: modelcif.AsymUnit, positions: np.ndarray, atom_mask: np.ndarray, atom_plddt: np.ndarray) -> list:
    """The atoms as modelcif objects (what python-ihm's own writer formats)."""
    res_idx, atom_idx = np.nonzero(np.asarray(atom_mask) > 0.5)
    xyz = np.asarray(positions, dtype=np.float64)[res_idx, atom_idx]
    bfac = np.clip(np.asarray(atom_plddt, dtype=np.float64)[res_idx, atom_idx] * 100.0, 0.0, 100.0)
    return [
        modelcif.model.Atom(asym_unit=asym, type_symbol=_ELEMENTS[a], seq_id=r + 1, atom_id=ATOM_TYPES[a], x=x, y=y, z=z, biso=b, occupancy=1.0)
        for r, a, (x, y, z), b in zip(res_idx.tolist(), atom_idx.tolist(), xyz.tolist(), bfac.tolist())
    ]


#: The columns of ``_atom_site`` as python-ihm writes them for a model (label and auth ids).
_ATOM_SITE = (
    "group_PDB", "id", "type_symbol", "label_atom_id", "label_alt_id", "label_comp_id", "label_seq_id", "auth_seq_id",
    "pdbx_PDB_ins_code", "label_asym_id", "Cartn_x", "Cartn_y", "Cartn_z", "occupancy", "label_entity_id", "auth_asym_id",
    "auth_comp_id", "B_iso_or_equiv", "pdbx_PDB_model_num",
)  # fmt: skip


def _atom_site_loop(aatype: np.ndarray, positions: np.ndarray, atom_mask: np.ndarray, atom_plddt: np.ndarray) -> str:
    """``_atom_type`` and ``_atom_site`` of model 1, chain A, entity 1: the rows python-ihm
    writes for :class:`modelcif.model.Atom` objects, formatted here in one pass (python-ihm's
    own writer takes about 80% of the file's time; a test compares the two)."""
    exists = np.asarray(atom_mask) > 0.5
    res_idx, atom_idx = np.nonzero(exists)
    xyz = np.asarray(positions, dtype=np.float64)[res_idx, atom_idx]
    bfac = np.clip(np.asarray(atom_plddt, dtype=np.float64)[res_idx, atom_idx] * 100.0, 0.0, 100.0)
    aa = np.asarray(aatype)
    rows = [
        f"ATOM {k + 1} {_ELEMENTS[a]} {ATOM_TYPES[a]} . {_RES3[aa[r]]} {r + 1} {r + 1} ? A {x:.3f} {y:.3f} {z:.3f} 1.000 1 A {_RES3[aa[r]]} {b:.3f} 1"
        for k, (r, a, (x, y, z), b) in enumerate(zip(res_idx.tolist(), atom_idx.tolist(), xyz.tolist(), bfac.tolist()))
    ]
    types = sorted({_ELEMENTS[a] for a in set(atom_idx.tolist())})
    head = "#\nloop_\n_atom_type.symbol\n" + "".join(f"{t}\n" for t in types) + "#\n#\nloop_\n" + "".join(f"_atom_site.{c}\n" for c in _ATOM_SITE)
    return head + "\n".join(rows) + "\n#\n"


class _Model(modelcif.model.AbInitioModel):
    """A model whose atoms are given as a list."""

    def __init__(self, atoms: list, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._atoms = atoms

    def get_atoms(self):  # type: ignore[no-untyped-def]
        return iter(self._atoms)


class _LocalPLDDT(modelcif.qa_metric.Local, modelcif.qa_metric.PLDDT):
    """Predicted lDDT-CA of each residue (0-100)."""

    name, software = "pLDDT", None


class _GlobalPLDDT(modelcif.qa_metric.Global, modelcif.qa_metric.PLDDT):
    """Mean of the residues' predicted lDDT-CA (0-100)."""

    name, software = "pLDDT", None


class _GlobalPTM(modelcif.qa_metric.Global, modelcif.qa_metric.PTM):
    """Predicted TM-score of the chain (0-1), computed for this sequence alone."""

    name, software = "pTM", None


def member_name(checksum: str, fmt: str = "pdb") -> str:
    """Archive member name of a structure: ``<checksum>.pdb.gz`` (or ``.cif.gz``); the
    member's data is the gzip-compressed file."""
    return f"{safe_member_name(checksum)}{FORMATS[fmt]}"


def safe_member_name(checksum: str) -> str:
    """Check that ``checksum`` is 32 lower-case hex digits (so it can name a file) and return it."""
    if not _CHECKSUM.match(checksum):
        raise ValueError(f"expected a 32-digit lower-case hex checksum, found {checksum!r}")
    return checksum
