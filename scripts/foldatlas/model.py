"""Loading ESMFold (transformers' ``EsmForProteinFolding``) and the tiny test model.

fair-esm's own ESMFold needs openfold, which cannot be installed from a registry;
transformers ships a self-contained port with the same weights (``facebook/esmfold_v1``).
Weights are read from a local folder or the Hugging Face cache, never downloaded at
run time (``scripts/download_weights.py`` does that once, on a machine with a network).
Loading uses safetensors or weights-only ``torch.load``: nothing is unpickled.

What a fold job runs, and why:

- **Device.** ``fold.device: auto`` uses CUDA when torch sees it and the CPU only when
  no GPU was asked for. When a GPU was allocated (``CUDA_VISIBLE_DEVICES`` or
  ``SLURM_JOB_GPUS``) or ``fold.device`` is ``cuda`` but torch sees no CUDA (a CPU-only
  torch, a missing driver), the job stops at once (:class:`GpuUnavailableError`) instead
  of folding on the CPU for days. ``fold.device: cpu`` is always obeyed.
- **Precision.** The ESM-2 language model runs in fp16 on GPUs with ``auto``, as
  ESMFold's reference code (``esm.half()``) and esm-fold do; fp32 on the CPU. bf16 only
  when asked for, and only on a GPU that computes it natively (compute capability 8.0 or
  newer; ``torch.cuda.is_bf16_supported()`` also counts emulation); it is not validated
  against the real weights, which are published in fp16. The rotary embedding's
  ``inv_freq`` stays fp32 whatever the language model's precision: in bf16 its phase at
  position 1024 is off by up to about 0.5 rad. The language model is cast before the
  model moves to the GPU, so the fp32 3B model never has to fit there. The trunk runs in
  fp32, with TF32 matmuls on GPUs.
- **Identity of the weights.** :func:`weights_checksum` identifies a weights folder by
  its content (config plus weight files, SHA-256), computed once and cached beside the
  weights; fold jobs record it with every prediction and in their resume fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .batching import MemoryModel
from .errors import ConfigError, FoldatlasError

__all__ = [
    "ESMFOLD_HUB_ID",
    "TINY_SEED",
    "ModelWeightsError",
    "GpuUnavailableError",
    "LoadedModel",
    "tiny_esmfold_config",
    "full_esmfold_config",
    "probe_esmfold_config",
    "gpu_allocation",
    "resolve_device",
    "bf16_native",
    "resolve_lm_dtype",
    "precision_name",
    "cast_for_inference",
    "weights_checksum",
    "memory_model",
    "device_label",
    "load_folding_model",
]

log = logging.getLogger("foldatlas.model")

#: Hugging Face repository of the ESMFold v1 weights.
ESMFOLD_HUB_ID = "facebook/esmfold_v1"
#: Seed of the tiny randomly initialised model (same weights in every process).
TINY_SEED = 0
#: Cache of the weight files' checksums, written beside them (keyed by size and mtime).
CHECKSUM_SIDECAR = ".foldatlas-checksums.json"
#: Files of a weights folder that identify the weights (besides ``config.json``).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
#: Values of CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS that mean "no GPU".
NO_GPU_VALUES = ("", "-1", "none", "nodevfiles")
_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


class GpuUnavailableError(FoldatlasError, RuntimeError):
    """A GPU was asked for (``fold.device`` or the job's allocation) but torch sees none.

    Attributes
    ----------
    spec : str
        ``fold.device`` as configured.
    allocation : str or None
        The environment variable that says a GPU was allocated (``CUDA_VISIBLE_DEVICES=0``).
    """

    def __init__(self, spec: str, allocation: str | None) -> None:
        if torch.version.cuda is None:
            build = f"torch {torch.__version__} here is a CPU-only build (torch.version.cuda is None)"
        else:
            build = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU (driver missing or too old? run nvidia-smi)"
        asked = f"fold.device is {spec!r}" + (f" and this job was allocated a GPU ({allocation})" if allocation else "")
        super().__init__(
            f"{asked}, but {build}; a fold job never falls back to the CPU when a GPU was asked for. "
            "Install a CUDA build of torch: with `snakemake --sdm conda`, fold jobs use envs/foldatlas-gpu.yaml "
            "(torch 2.13.0 from PyPI, a CUDA build on Linux x86_64); in a virtualenv, `pip install torch==2.13.0` "
            "without a CPU-only index. To fold on the CPU on purpose, set fold.device: cpu."
        )
        self.spec = spec
        self.allocation = allocation


@dataclass
class LoadedModel:
    """A folding model ready for inference.

    ``model_id`` names the weights in every output table (``tiny-random-esmfold-seed0``
    for the test model, whose structures are not meaningful); ``model_version`` is the
    weights' revision when known; ``weights_checksum`` identifies them by content
    (:func:`weights_checksum`); ``tf32`` says whether the trunk's matmuls use TF32.
    """

    model: Any
    model_id: str
    model_version: str
    device: torch.device
    lm_dtype: torch.dtype
    weights_checksum: str = ""
    tf32: bool = False

    @property
    def lm_precision(self) -> str:
        """``fp32``, ``fp16`` or ``bf16``: the language model's precision."""
        return precision_name(self.lm_dtype)


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
                "max_recycles": 4,  # as ESMFold v1: the model's own default is 4 trunk passes
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


def probe_esmfold_config(num_blocks: int = 1) -> Any:
    """ESMFold's real trunk and structure module (pair 128, sequence 1024) after a toy
    language model: measures the trunk's memory per pair entry on small machines."""
    return _esmfold_config(
        hidden_size=64,
        layers=2,
        heads=4,
        esmfold={"fp16_esm": False, "trunk": {"num_blocks": num_blocks, "max_recycles": 4}},
    )


def gpu_allocation(environ: Mapping[str, str] | None = None) -> str | None:
    """``NAME=value`` of the variable saying this job was allocated a GPU, else None.

    ``CUDA_VISIBLE_DEVICES`` (set by Slurm and by users) and ``SLURM_JOB_GPUS`` count
    unless empty or a "no device" value (``-1``, ``NoDevFiles``).
    """
    env = os.environ if environ is None else environ
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS"):
        value = env.get(name)
        if value is not None and value.strip().lower() not in NO_GPU_VALUES:
            return f"{name}={value}"
    return None


def resolve_device(spec: str, environ: Mapping[str, str] | None = None) -> torch.device:
    """The device of ``fold.device``, with an explicit CUDA index.

    ``cpu`` is always the CPU. ``auto`` is CUDA when torch sees it, else the CPU, but
    only when no GPU was allocated (:func:`gpu_allocation`). ``cuda``/``cuda:N`` need CUDA.

    Raises
    ------
    GpuUnavailableError
        A GPU was asked for or allocated, but torch sees no CUDA device.
    ConfigError
        ``cuda:N`` names a device that does not exist.
    """
    if spec == "cpu":
        return torch.device("cpu")
    allocation = gpu_allocation(environ)
    if not torch.cuda.is_available():
        if spec == "auto" and allocation is None:
            return torch.device("cpu")
        raise GpuUnavailableError(spec, allocation)
    device = torch.device("cuda" if spec == "auto" else spec)
    if device.type != "cuda":
        raise ConfigError(f"fold.device: expected auto, cpu, cuda or cuda:N, found {spec!r}", key="fold.device", value=spec)
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ConfigError(f"fold.device is {spec!r} but only {torch.cuda.device_count()} CUDA devices are visible", key="fold.device", value=spec)
    return torch.device("cuda", index)


def bf16_native(capability: tuple[int, int]) -> bool:
    """Whether a GPU of this compute capability computes bf16 natively (Ampere, 8.0, on)."""
    return tuple(capability) >= (8, 0)


def resolve_lm_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Precision of the ESM-2 language model (``fold.precision``).

    ``auto`` is fp16 on a GPU (the reference: ESMFold's ``esm.half()``) and fp32 on the
    CPU. ``bf16`` on a GPU needs native bf16 on *that* device (:func:`bf16_native`).

    Raises
    ------
    ConfigError
        ``bf16`` asked for on a GPU that would only emulate it.
    """
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in _PRECISIONS:
        raise ConfigError(f"fold.precision: expected auto, fp32, bf16 or fp16, found {precision!r}", key="fold.precision", value=precision)
    if precision == "bf16" and device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if not bf16_native(capability):
            raise ConfigError(
                f"fold.precision: bf16 needs a GPU of compute capability 8.0 or newer; {torch.cuda.get_device_name(device)} "
                f"has {capability[0]}.{capability[1]} (bf16 would be emulated, slowly): use fp16 or auto",
                key="fold.precision",
                value=precision,
            )
    return _PRECISIONS[precision]


def precision_name(dtype: torch.dtype) -> str:
    """``fp32``, ``fp16`` or ``bf16``."""
    return {v: k for k, v in _PRECISIONS.items()}[dtype]


def _rotary_modules(language_model: Any) -> list[Any]:
    return [m for m in language_model.modules() if hasattr(m, "inv_freq") and hasattr(m, "compute_default_rope_parameters")]


def cast_for_inference(model: Any, lm_dtype: torch.dtype) -> None:
    """Cast in place: the language model (``model.esm``) to ``lm_dtype``, everything else
    to fp32, and the rotary ``inv_freq`` back to fp32 (recomputed, as a checkpoint saved
    in fp16 holds it rounded). Works on the CPU, before the model moves to a GPU."""
    lm = {id(t) for t in [*model.esm.parameters(), *model.esm.buffers()]}
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in lm and t.is_floating_point() and t.dtype != torch.float32:
            t.data = t.data.float()
    model.esm.to(lm_dtype)
    for rotary in _rotary_modules(model.esm):
        inv_freq, _ = rotary.compute_default_rope_parameters(rotary.config)
        rotary.inv_freq = inv_freq.to(device=rotary.inv_freq.device, dtype=torch.float32)


def memory_model(model: Any, lm_dtype: torch.dtype) -> MemoryModel:
    """The :class:`~foldatlas.batching.MemoryModel` of a loaded ESMFold."""
    cfg = model.config
    trunk = cfg.esmfold_config.trunk
    return MemoryModel.for_config(
        pair_dim=int(trunk.pairwise_state_dim),
        pair_head_width=int(trunk.pairwise_head_width),
        seq_dim=int(trunk.sequence_state_dim),
        lm_layers=int(cfg.num_hidden_layers),
        lm_hidden=int(cfg.hidden_size),
        lm_itemsize=torch.empty((), dtype=lm_dtype).element_size(),
    )


def device_label(device: torch.device) -> tuple[str, str]:
    """``(label, kind)``: ``("cuda:0 (NVIDIA H100 80GB HBM3)", "NVIDIA H100 80GB HBM3")``
    or ``("cpu", "cpu")``. The kind (GPU model, not index) goes into resume fingerprints."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda:{device.index} ({name})", name
    return str(device), device.type


# ---------------------------------------------------------------------- weights identity
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _weight_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and (p.name == "config.json" or p.name.endswith(WEIGHT_SUFFIXES))]
    return sorted(files, key=lambda p: p.name)


def weights_checksum(folder: str | os.PathLike[str]) -> str:
    """SHA-256 identifying the weights in ``folder`` by content: over ``config.json`` and
    every weight file's own SHA-256 (``*.safetensors``, ``*.bin``, ``*.pt``, indexes).

    Each file's digest is cached in ``.foldatlas-checksums.json`` beside it, keyed by
    size and modification time, so 8.5 GB are read once, not by every fold job; a file
    rewritten in place is hashed again. A read-only folder is hashed every time.
    """
    folder = Path(folder)
    sidecar = folder / CHECKSUM_SIDECAR
    try:
        cached = json.loads(sidecar.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        cached = {}
    entries, changed = {}, False
    for path in _weight_files(folder):
        st = path.stat()
        key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        old = cached.get(path.name)
        if isinstance(old, dict) and {k: old.get(k) for k in key} == key and isinstance(old.get("sha256"), str):
            entries[path.name] = old
            continue
        log.info("computing the checksum of %s (once; cached in %s)", path, CHECKSUM_SIDECAR)
        entries[path.name] = {**key, "sha256": _file_sha256(path)}
        changed = True
    if changed or set(entries) != set(cached):
        try:
            with atomic_path(sidecar) as tmp:
                tmp.write_text(json.dumps({"format": 1, "files": entries}, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            log.info("could not cache weight checksums in %s (%s): they are recomputed next time", sidecar, exc)
    lines = "".join(f"{name} {e['sha256']}\n" for name, e in sorted(entries.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _random_checksum(model: Any, seed: int, *, exact: bool) -> str:
    """Identity of randomly initialised weights: every tensor's bytes (``exact``, for
    small models) or the config, seed and library versions (full size)."""
    digest = hashlib.sha256(f"random seed {seed}\n{model.config.to_json_string(use_diff=False)}".encode())
    if not exact:
        import transformers

        digest.update(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
        return digest.hexdigest()
    for name, t in sorted(model.state_dict().items()):
        digest.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _weights_candidates(weights: str | None) -> list[str]:
    if weights:
        return [str(Path(weights).resolve())]
    from huggingface_hub.constants import HF_HUB_CACHE

    return [f"Hugging Face cache {HF_HUB_CACHE} (repository {ESMFOLD_HUB_ID})"]


def _hub_snapshot(searched: list[str]) -> Path:
    """The cached snapshot folder of :data:`ESMFOLD_HUB_ID` (offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ESMFOLD_HUB_ID, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means: not in the cache
        raise ModelWeightsError(searched, f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def _load_esmfold(weights: str | None) -> tuple[Any, str, Path]:
    """The model, its revision and the folder its files were read from."""
    from transformers import EsmForProteinFolding

    searched = _weights_candidates(weights)
    if weights:
        folder = Path(weights)
        if not (folder / "config.json").is_file():
            raise ModelWeightsError(searched, f"{folder} has no config.json (expected a save_pretrained folder)")
    else:
        folder = _hub_snapshot(searched)
    try:
        model = EsmForProteinFolding.from_pretrained(str(folder), local_files_only=True, use_safetensors=None)
    except OSError as exc:
        raise ModelWeightsError(searched, f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a pickle refused by weights-only loading
        first = (str(exc).splitlines() or [""])[0]
        raise ModelWeightsError(searched, f"the weights there could not be loaded safely ({type(exc).__name__}: {first})") from None
    revision = getattr(model.config, "_commit_hash", None) or (folder.name if not weights else "local")
    return model, revision, folder


def _random_model(config: Any, device: torch.device) -> Any:
    """A randomly initialised model, seeded with :data:`TINY_SEED`, built on ``device``."""
    from transformers import EsmForProteinFolding

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(TINY_SEED)
        return EsmForProteinFolding(config)


def _build(name: str, weights: str | None, device: torch.device) -> tuple[Any, str, str, str]:
    """``(model, model_id, version, weights_checksum)`` of ``fold.model``."""
    if name == "tiny":
        model = _random_model(tiny_esmfold_config(), torch.device("cpu"))  # same weights on every device
        return model, f"tiny-random-esmfold-seed{TINY_SEED}", "random", _random_checksum(model, TINY_SEED, exact=True)
    if name == "esmfold_v1":
        model, version, folder = _load_esmfold(weights)
        return model, ESMFOLD_HUB_ID, version, weights_checksum(folder)
    if name == "full_random":
        # built where it runs (a 3.5B-parameter random init is slow on a CPU); its
        # weights differ between devices and mean nothing
        model = _random_model(full_esmfold_config(), device)
        return model, f"full-random-esmfold-seed{TINY_SEED}", "random", _random_checksum(model, TINY_SEED, exact=False)
    raise ConfigError(f"fold.model: expected esmfold_v1, tiny or full_random, found {name!r}", key="fold.model", value=name)


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
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`resolve_device`).
    precision
        Precision of the ESM-2 language model: ``auto``, ``fp32``, ``bf16``, ``fp16``
        (see :func:`resolve_lm_dtype`).

    Raises
    ------
    ModelWeightsError
        No weights where they were looked for; the message says where and how to get them.
    GpuUnavailableError
        A GPU was asked for or allocated, but torch sees none.
    """
    dev = resolve_device(device)
    lm_dtype = resolve_lm_dtype(precision, dev)
    model, model_id, version, checksum = _build(name, weights, dev)
    model = model.eval().requires_grad_(False)
    cast_for_inference(model, lm_dtype)  # before the move: the fp32 3B model never sits on the GPU
    model = model.to(dev)
    tf32 = dev.type == "cuda"
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("model %s (%s, weights %s) on %s, language model in %s, TF32 %s", model_id, version, checksum[:12], dev, lm_dtype, "on" if tf32 else "off")
    return LoadedModel(model, model_id, version, dev, lm_dtype, checksum, tf32)


def download_esmfold(out: str | os.PathLike[str]) -> Path:
    """Download ESMFold v1 from the Hugging Face Hub and save it to ``out`` (needs a
    network), with its checksums cached beside it (:func:`weights_checksum`)."""
    from transformers import EsmForProteinFolding

    model = EsmForProteinFolding.from_pretrained(ESMFOLD_HUB_ID)
    out = Path(out)
    model.save_pretrained(out)
    log.info("weights checksum %s", weights_checksum(out))
    return out
