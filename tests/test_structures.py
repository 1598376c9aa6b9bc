"""Structure files: unknown residues keep their place in the chain (UNK with the backbone
ESMFold predicts), ModelCIF written with modelcif reads back in gemmi, archive names."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from foldatlas.prediction import HostOutput, SeqItem, predictions_from_output
from foldatlas.structures import ATOM_TYPES, UNKNOWN, UNKNOWN_ATOMS, member_name, modelcif_text, pdb_text, unknown_backbone

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGXXXXGTQDNLSGAEKAVQVB"  # X at 42-45, B at 61


def _forward(model, seq: str) -> tuple[dict, np.ndarray]:  # type: ignore[no-untyped-def]
    import torch
    from transformers.models.esm.openfold_utils import residue_constants as rc

    order = {c: i for i, c in enumerate(rc.restypes_with_x)}
    aatype = torch.tensor([[order.get(c, UNKNOWN) for c in seq]])
    with torch.inference_mode():
        out = model(aatype, attention_mask=torch.ones_like(aatype), num_recycles=0)
    return out, aatype.numpy()


def test_unknown_backbone_is_placed_as_esmfold_places_alanine(tiny_model):
    from transformers.models.esm.openfold_utils.feats import atom14_to_atom37

    out, aatype = _forward(tiny_model.model, SEQ)
    pos37 = atom14_to_atom37(out["positions"][-1], out)[0].numpy()
    bb = unknown_backbone(out["frames"][-1][0].numpy(), out["angles"][-1][0, :, 2].numpy())
    ala = [i for i, c in enumerate(SEQ) if c == "A"]
    np.testing.assert_allclose(bb[ala], pos37[ala][:, list(UNKNOWN_ATOMS)], atol=2e-3)
    # ESMFold itself gives X no atom at all: without the frames the residues would vanish
    unk = [i for i, c in enumerate(SEQ) if c in "XB"]
    assert not out["atom37_atom_exists"][0, unk].any()
    np.testing.assert_allclose(np.linalg.norm(bb[unk, 1] - bb[unk, 0], axis=1), 1.458, atol=0.01)  # N-CA bond


def test_unknown_residues_keep_numbering_and_length(tiny_model):
    from transformers.models.esm.openfold_utils.feats import atom14_to_atom37

    out, aatype = _forward(tiny_model.model, SEQ)
    L = len(SEQ)
    host = HostOutput(
        positions=atom14_to_atom37(out["positions"][-1], out).numpy(), atom_exists=out["atom37_atom_exists"].bool().numpy(),
        atom_plddt=out["plddt"].numpy(), pae=out["predicted_aligned_error"].numpy(), ptm=np.array([0.5]), aatype=aatype,
        pooled={}, per_residue={}, frames=out["frames"][-1].numpy(), psi=out["angles"][-1][..., 2, :].numpy(),
    )  # fmt: skip
    p = predictions_from_output([SeqItem("a" * 32, SEQ)], host, chunk_size=None, seconds=0.0, save_pae=False, artefact_max_plddt=0.7)[0]
    chain = gemmi.read_pdb_string(pdb_text(p.aatype, p.positions, p.atom_mask, p.atom_plddt))[0][0]
    assert [r.seqid.num for r in chain] == list(range(1, L + 1))
    assert [r.name for r in chain if r.name == "UNK"] == ["UNK"] * 5
    assert all(sorted(a.name for a in r) == ["C", "CA", "N", "O"] for r in chain if r.name == "UNK")
    # without frames (an engine that does not pass them), unknown residues have no atoms
    bare = predictions_from_output([SeqItem("a" * 32, SEQ)], HostOutput(**{**host.__dict__, "frames": None, "psi": None}), chunk_size=None, seconds=0.0, save_pae=False, artefact_max_plddt=0.7)[0]
    assert len(gemmi.read_pdb_string(pdb_text(bare.aatype, bare.positions, bare.atom_mask, bare.atom_plddt))[0][0]) == L - 5


def test_fold_engine_gives_unknown_residues_their_backbone(tiny_model):
    from conftest import engine_settings
    from foldatlas.engine import FoldEngine

    p = FoldEngine(tiny_model, engine_settings()).predict([SeqItem("a" * 32, SEQ)])[0]
    assert p.atom_mask[SEQ.index("X")].sum() == 4


def _structure(L: int = 30, unknown: tuple[int, ...] = (5,)) -> tuple[np.ndarray, ...]:
    from ideal import GLY, ideal_backbone

    aatype = np.full(L, GLY)
    aatype[list(unknown)] = UNKNOWN
    pos, mask = np.zeros((L, 37, 3)), np.zeros((L, 37), dtype=bool)
    pos[:, list(UNKNOWN_ATOMS)] = ideal_backbone(L)
    mask[:, list(UNKNOWN_ATOMS)] = True
    plddt = np.tile(np.linspace(0.3, 0.95, L)[:, None], (1, 37))
    return aatype, pos, mask, plddt


def test_modelcif_reads_back_in_gemmi_with_plddt_and_ptm():
    aatype, pos, mask, plddt = _structure()
    cif = modelcif_text(aatype, pos, mask, plddt, checksum="ab" * 16, ptm=0.8125, model_id="esmfold_v1", model_version="abc", software_version="9.9")
    block = gemmi.cif.read_string(cif)[0]
    st = gemmi.make_structure_from_block(block)
    pdb = gemmi.read_pdb_string(pdb_text(aatype, pos, mask, plddt))
    chain, ref = st[0][0], pdb[0][0]
    assert [r.name for r in chain] == [r.name for r in ref] and [r.seqid.num for r in chain] == list(range(1, 31))
    for r, q in zip(chain, ref):
        for a, b in zip(r, q):
            assert a.name == b.name and a.pos.dist(b.pos) < 1e-3 and a.b_iso == pytest.approx(b.b_iso, abs=0.01)
    qa = gemmi.cif.Block.find(block, "_ma_qa_metric.", ["id", "name", "mode", "type"])
    assert sorted((r[1], r[2], r[3]) for r in qa) == [("pLDDT", "global", "pLDDT"), ("pLDDT", "local", "pLDDT"), ("pTM", "global", "pTM")]
    local = [float(v) for v in block.find_values("_ma_qa_metric_local.metric_value")]
    np.testing.assert_allclose(local, np.clip(plddt[:, 1] * 100, 0, 100), atol=0.01)
    glob = {r[0]: float(r[1]) for r in block.find("_ma_qa_metric_global.", ["metric_id", "metric_value"])}
    assert sorted(glob.values()) == pytest.approx(sorted([0.8125, float((plddt[:, 1] * 100).mean())]), abs=1e-3)  # 3 decimals
    software = block.find("_software.", ["name", "version"])
    assert [(r[0], r[1]) for r in software] == [("ESMFold", "'esmfold_v1 (abc)'"), ("foldatlas", "9.9")]
    assert block.find_value("_entity_poly.pdbx_seq_one_letter_code_can").replace("\n", "").replace(";", "").strip() == "GGGGGXGGGGGGGGGGGGGGGGGGGGGGGG"


def test_member_names_are_checksums_with_the_format():
    c = "0123456789abcdef" * 2
    assert member_name(c) == f"{c}.pdb.gz" and member_name(c, "cif") == f"{c}.cif.gz"
    with pytest.raises(ValueError, match="32-digit lower-case hex checksum"):
        member_name("../etc/passwd")
    assert ATOM_TYPES[slice(0, 5)] == ("N", "CA", "C", "CB", "O")


def test_modelcif_atoms_are_those_python_ihm_writes():
    """The fast atom rows equal python-ihm's own, category by category, value by value."""
    import io

    import modelcif.dumper

    from foldatlas.structures import _modelcif_system

    aatype, pos, mask, plddt = _structure(12, unknown=(0, 7))
    kw = {"checksum": "cd" * 16, "ptm": 0.61, "model_id": "m", "model_version": "v", "software_version": "s"}
    fast = gemmi.cif.read_string(modelcif_text(aatype, pos, mask, plddt, **kw))[0]
    out = io.StringIO()
    modelcif.dumper.write(out, [_modelcif_system(aatype, pos, mask, plddt, atoms=True, **kw)])  # with python-ihm's checks
    slow = gemmi.cif.read_string(out.getvalue())[0]
    names = sorted(i.loop.tags[0].split(".")[0] + "." if i.loop else i.pair[0].split(".")[0] + "." for i in slow if i.loop or i.pair)
    assert "_atom_site." in names and "_ma_qa_metric_local." in names
    for name in set(names):
        assert fast.get_mmcif_category(name) == slow.get_mmcif_category(name), name
