"""Stand-alone ESM-2 embeddings with fair-esm (``embeddings.model``).

fair-esm 2.0.0 pickles an ``argparse.Namespace`` in its checkpoints, which torch >= 2.6's
weights-only loading refuses. foldatlas allows exactly that one class for the load
(``torch.serialization.safe_globals``) and never turns weights-only loading off. The
checkpoint file name must start with ``esm2`` and have a sibling
``<stem>-contact-regression.pt``, as fair-esm expects.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

__all__ = ["Esm2Embedder", "load_esm2_checkpoint", "resolve_layers"]

log = logging.getLogger("foldatlas.esm2")


def resolve_layers(layers: tuple[int, ...], num_layers: int) -> tuple[int, ...]:
    """``embeddings.layers`` as non-negative indices of an ESM-2 with ``num_layers`` layers
    (0 = embedding layer, ``num_layers`` = last layer; -1 is the last one).

    Raises
    ------
    ConfigError
        A layer is out of range for this model.
    """
    n = num_layers
    for k in layers:
        if not -(n + 1) <= k <= n:
            raise ConfigError(
                f"embeddings.layers: layer {k} out of range for a {n}-layer ESM-2 (expected -{n + 1}..{n})",
                key="embeddings.layers",
                value=k,
            )
    return tuple(k % (n + 1) for k in layers)


def load_esm2_checkpoint(path: str | Path) -> tuple[Any, Any]:
    """Load a local fair-esm ESM-2 checkpoint; return ``(model, alphabet)``.

    Raises
    ------
    ConfigError
        The file or its contact-regression sibling is missing, or the name does not
        start with ``esm2``.
    """
    import esm

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"embeddings.model: no ESM-2 checkpoint at {path}", key="embeddings.model", value=str(path))
    if not path.stem.startswith("esm2"):
        raise ConfigError(
            f"embeddings.model: expected a file name starting with 'esm2' (fair-esm's convention), found {path.name!r}",
            key="embeddings.model",
            value=str(path),
        )
    regression = path.with_name(f"{path.stem}-contact-regression.pt")
    if not regression.is_file():
        raise ConfigError(f"embeddings.model: fair-esm needs {regression.name} beside {path.name}", key="embeddings.model", value=str(path))
    with torch.serialization.safe_globals([argparse.Namespace]):
        model, alphabet = esm.pretrained.load_model_and_alphabet_local(str(path))
    return model, alphabet


class Esm2Embedder:
    """Mean-pooled (and per-residue) ESM-2 representations from a fair-esm model.

    ``layers`` index ``repr_layers`` of fair-esm (0 = embeddings, -1 = last layer).
    ``embed`` returns ``{layer: [tensor (L_i, D) per sequence]}`` on the model's device.
    """

    def __init__(self, path: str | Path, *, layers: tuple[int, ...], device: torch.device) -> None:
        model, alphabet = load_esm2_checkpoint(path)
        self.model = model.eval().requires_grad_(False).to(device)
        self.alphabet = alphabet
        self.converter = alphabet.get_batch_converter()
        n = int(model.num_layers)
        self.layers = resolve_layers(layers, n)
        self.dim = int(model.embed_dim)
        self.device = device
        self.model_id = Path(path).stem
        log.info("stand-alone embeddings from %s (%d layers, %d dims)", self.model_id, n, self.dim)

    @torch.inference_mode()
    def embed(self, sequences: list[str]) -> dict[int, list[torch.Tensor]]:
        _, _, tokens = self.converter([(str(i), s) for i, s in enumerate(sequences)])
        out = self.model(tokens.to(self.device), repr_layers=list(self.layers))
        reps = out["representations"]
        return {layer: [reps[layer][i, 1 : len(s) + 1].float() for i, s in enumerate(sequences)] for layer in self.layers}
