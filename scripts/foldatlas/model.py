"""Loading ESMFold (transformers' ``EsmForProteinFolding``) and the tiny test model.

fair-esm's own ESMFold needs openfold, which cannot be installed from a registry;
transformers ships a self-contained port with the same weights (``facebook/esmfold_v1``).
Weights are read from a local folder or the Hugging Face cache, never downloaded at
run time (``scripts/download_weights.py`` does that once, on a machine with a network).
Loading uses safetensors or weights-only ``torch.load``: nothing is unpickled.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, FoldatlasError

__all__ = [
    "ESMFOLD_HUB_ID",
    "TINY_SEED",
    "ModelWeightsError",
    "LoadedModel",
    "tiny_esmfold_config",
    "load_folding_model",
]

log = logging.getLogger("foldatlas.model")

#: Hugging Face repository of the ESMFold v1 weights.
ESMFOLD_HUB_ID = "facebook/esmfold_v1"
#: Seed of the tiny randomly initialised model (same weights in every process).
TINY_SEED = 0


class ModelWeightsError(FoldatlasError, FileNotFoundError):
    """The model's weights were not found where they were looked for.

    Attributes
    ----------
    searched : list of str
        Every place looked in.
    """

    def __init__(self, searched: list[str], detail: str = "") -> None:
        where = "\n  ".join(searched)
        super().__init__(
            f"ESMFold weights not found. Looked in:\n  {where}\n"
            f"{detail + chr(10) if detail else ''}"
            "Get them once on a machine with a network: `make weights` (or "
            "`python scripts/download_weights.py --out DIR`), then set fold.weights: DIR "
            "(or copy the Hugging Face cache, HF_HOME, to this machine). "
            "For a demo without weights use fold.model: tiny."
        )
        self.searched = searched


@dataclass
class LoadedModel:
    """A folding model ready for inference.

    ``model_id`` names the weights in every output table (``tiny-random-esmfold-seed0``
    for the test model, whose structures are not meaningful); ``model_version`` is the
    weights' revision when known.
    """

    model: Any
    model_id: str
    model_version: str
    device: torch.device
    lm_dtype: torch.dtype


def _esmfold_config(*, hidden_size: int, layers: int, heads: int, esmfold: dict, **extra: Any) -> Any:
    """An ``EsmConfig`` of the ESMFold architecture (ESM-2 language model + folding trunk)."""
    from transformers import EsmConfig
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    return EsmConfig(
        vocab_size=33,
        pad_token_id=1,
        mask_token_id=32,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden_size,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        layer_norm_eps=1e-5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        is_folding_model=True,
        vocab_list=list(get_default_vocab_list()),
        esmfold_config=esmfold,
        **extra,
    )


def tiny_esmfold_config() -> Any:
    """An ``EsmConfig`` of the real ESMFold architecture at toy size (about 345k parameters)."""
    return _esmfold_config(
        hidden_size=64,
        layers=2,
        heads=4,
        # wider than the default 0.02 so that random confidences spread over 0.2-0.7
        # instead of sitting at 0.5: filters then have both outcomes in tests and demos
        initializer_range=0.5,
        esmfold={
            "fp16_esm": False,
            "lddt_head_hid_dim": 16,
            "trunk": {
                "num_blocks": 2,
                "sequence_state_dim": 64,
                "pairwise_state_dim": 32,
                "sequence_head_width": 16,
                "pairwise_head_width": 16,
                "max_recycles": 1,
                "structure_module": {
                    "sequence_dim": 32,
                    "pairwise_dim": 16,
                    "ipa_dim": 8,
                    "resnet_dim": 16,
                    "num_heads_ipa": 2,
                    "num_qk_points": 2,
                    "num_v_points": 2,
                    "num_blocks": 2,
                    "num_resnet_blocks": 1,
                },
            },
        },
    )


def full_esmfold_config() -> Any:
    """``EsmConfig`` of the full-size ESMFold v1 (ESM-2 3B + 48-block trunk), for benchmarks.

    With random weights it has the real model's compute cost; its outputs mean nothing.
    """
    return _esmfold_config(
        hidden_size=2560,
        layers=36,
        heads=40,
        max_position_embeddings=1026,
        esmfold={"fp16_esm": False, "trunk": {"num_blocks": 48, "max_recycles": 4}},
    )


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"fold.device is {spec!r} but no CUDA device is visible (CUDA_VISIBLE_DEVICES?)", key="fold.device", value=spec)
    return device


def resolve_lm_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Precision of the ESM-2 language model: ``auto`` is bf16 on a GPU that supports it
    (fp16 otherwise) and fp32 on the CPU; the folding trunk always runs in fp32 (TF32 on GPUs)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _weights_candidates(weights: str | None) -> list[str]:
    if weights:
        return [str(Path(weights).resolve())]
    from huggingface_hub.constants import HF_HUB_CACHE

    return [f"Hugging Face cache {HF_HUB_CACHE} (repository {ESMFOLD_HUB_ID})"]


def _load_esmfold(weights: str | None) -> tuple[Any, str]:
    from transformers import EsmForProteinFolding

    searched = _weights_candidates(weights)
    if weights:
        folder = Path(weights)
        if not (folder / "config.json").is_file():
            raise ModelWeightsError(searched, f"{folder} has no config.json (expected a save_pretrained folder)")
        source: str = str(folder)
    else:
        source = ESMFOLD_HUB_ID
    try:
        model = EsmForProteinFolding.from_pretrained(source, local_files_only=True, use_safetensors=None)
    except OSError as exc:
        raise ModelWeightsError(searched, f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a pickle refused by weights-only loading
        first = (str(exc).splitlines() or [""])[0]
        raise ModelWeightsError(searched, f"the weights there could not be loaded safely ({type(exc).__name__}: {first})") from None
    revision = getattr(model.config, "_commit_hash", None) or "local"
    return model, revision


def load_folding_model(
    name: str,
    *,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> LoadedModel:
    """Load the folding model once for a whole job.

    Parameters
    ----------
    name
        ``esmfold_v1`` (real weights from ``weights`` or the Hugging Face cache) or
        ``tiny`` (the real architecture at toy size, randomly initialised from
        :data:`TINY_SEED`; for demos and tests, its structures are meaningless).
    weights
        A folder written by ``save_pretrained`` (``config.json`` + safetensors).
    device
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    precision
        Precision of the ESM-2 language model: ``auto``, ``fp32``, ``bf16``, ``fp16``.

    Raises
    ------
    ModelWeightsError
        No weights where they were looked for; the message says where and how to get them.
    """
    dev = resolve_device(device)
    lm_dtype = resolve_lm_dtype(precision, dev)
    if name == "tiny":
        from transformers import EsmForProteinFolding

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = EsmForProteinFolding(tiny_esmfold_config())
        model_id, version = f"tiny-random-esmfold-seed{TINY_SEED}", "random"
    elif name == "esmfold_v1":
        model, version = _load_esmfold(weights)
        model_id = ESMFOLD_HUB_ID
    elif name == "full_random":
        from transformers import EsmForProteinFolding

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = EsmForProteinFolding(full_esmfold_config())
        model_id, version = f"full-random-esmfold-seed{TINY_SEED}", "random"
    else:
        raise ConfigError(f"fold.model: expected esmfold_v1, tiny or full_random, found {name!r}", key="fold.model", value=name)
    model = model.eval().requires_grad_(False)
    model = model.to(dev)
    model.esm.to(lm_dtype)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("model %s (%s) on %s, language model in %s", model_id, version, dev, lm_dtype)
    return LoadedModel(model, model_id, version, dev, lm_dtype)


def download_esmfold(out: str | os.PathLike[str]) -> Path:
    """Download ESMFold v1 from the Hugging Face Hub and save it to ``out`` (needs a network)."""
    from transformers import EsmForProteinFolding

    model = EsmForProteinFolding.from_pretrained(ESMFOLD_HUB_ID)
    out = Path(out)
    model.save_pretrained(out)
    return out
