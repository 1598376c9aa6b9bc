"""Stand-alone fair-esm ESM-2 embeddings from a checkpoint in the official format."""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import torch

from conftest import engine_settings
from foldatlas.engine import FoldEngine
from foldatlas.prediction import SeqItem
from foldatlas.errors import FoldatlasError
from foldatlas.esm2 import Esm2Embedder, load_esm2_checkpoint


def write_tiny_esm2(folder, name="esm2_t2_tiny"):
    """A 2-layer ESM-2 saved exactly as fair-esm's published checkpoints are laid out."""
    import esm

    torch.manual_seed(0)
    model = esm.model.esm2.ESM2(
        num_layers=2, embed_dim=64, attention_heads=4, alphabet=esm.data.Alphabet.from_architecture("ESM-1b"), token_dropout=True
    )
    state = model.state_dict()
    weights, regression = {}, {}
    for k, v in state.items():
        if k.startswith("contact_head.regression"):
            regression[k] = v
        elif k.startswith("lm_head"):
            weights[f"encoder.{k}"] = v
        else:
            weights[f"encoder.sentence_encoder.{k}"] = v
    cfg = argparse.Namespace(encoder_layers=2, encoder_embed_dim=64, encoder_attention_heads=4, token_dropout=True)
    path = folder / f"{name}.pt"
    torch.save({"model": weights, "cfg": {"model": cfg}}, path)
    torch.save({"model": regression}, folder / f"{name}-contact-regression.pt")
    return path, model


def test_official_format_needs_the_namespace_allowance(tmp_path):
    path, _ = write_tiny_esm2(tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu")  # weights-only by default: refuses argparse.Namespace
    model, alphabet = load_esm2_checkpoint(path)
    assert model.num_layers == 2 and alphabet.padding_idx == 1


def test_embeddings_match_the_model(tmp_path):
    path, reference = write_tiny_esm2(tmp_path)
    emb = Esm2Embedder(path, layers=(-1, 0), device=torch.device("cpu"))
    seqs = ["MKTAYIAKQRQISFVK", "MKVLAAGIV"]
    got = emb.embed(seqs)
    reference.eval()
    import esm

    _, _, tokens = esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()([("b", seqs[1])])
    with torch.no_grad():
        rep = reference(tokens, repr_layers=[2])["representations"][2][0, 1 : len(seqs[1]) + 1]
    np.testing.assert_allclose(got[2][1].numpy(), rep.numpy(), atol=1e-5)
    assert got[0][0].shape == (16, 64)


def test_engine_takes_embeddings_from_standalone_model(tmp_path, tiny_model):
    path, _ = write_tiny_esm2(tmp_path)
    emb = Esm2Embedder(path, layers=(-1,), device=torch.device("cpu"))
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=0), standalone_embedder=emb)
    held = []
    hook = tiny_model.model.trunk.register_forward_pre_hook(lambda *a: held.append(eng._captured))
    (p,) = eng.predict([SeqItem("0" * 32, "MKTAYIAKQRQISFVK")])
    hook.remove()
    eng.close()
    assert held == [None]  # ESMFold's own hidden states are not kept through the trunk
    np.testing.assert_allclose(p.embeddings[2], emb.embed(["MKTAYIAKQRQISFVK"])[2][0].mean(0).numpy(), atol=1e-5)


@pytest.mark.parametrize("case", ["missing", "badname", "noregression"])
def test_bad_checkpoints_fail_clearly(tmp_path, case):
    path, _ = write_tiny_esm2(tmp_path)
    if case == "missing":
        path = tmp_path / "esm2_nothere.pt"
        match = "no ESM-2 checkpoint"
    elif case == "badname":
        path = path.rename(tmp_path / "model.pt")
        match = "starting with 'esm2'"
    else:
        (tmp_path / "esm2_t2_tiny-contact-regression.pt").unlink()
        match = "contact-regression.pt beside"
    with pytest.raises(FoldatlasError, match=match):
        load_esm2_checkpoint(path)
