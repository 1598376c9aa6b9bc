"""Loading the folding model: device policy, language-model precision, weights identity,
and the memory model (CPU; the GPU side is bench/gpu_check.sh)."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
import torch

from conftest import save_tiny_weights
from foldatlas.batching import CHUNK_CHOICES, ESMFOLD_V1_MEMORY, make_batches
from foldatlas.errors import ConfigError
from foldatlas.fold import ALLOC_CONF, configure_cuda_allocator
from foldatlas.model import (
    CHECKSUM_SIDECAR,
    GpuUnavailableError,
    ModelWeightsError,
    bf16_native,
    cast_for_inference,
    full_esmfold_config,
    gpu_allocation,
    load_folding_model,
    resolve_device,
    resolve_lm_dtype,
    tiny_esmfold_config,
    weights_checksum,
)

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without CUDA")


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"CUDA_VISIBLE_DEVICES": ""}, None),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, None),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),
        ({"SLURM_JOB_GPUS": "2,3"}, "SLURM_JOB_GPUS=2,3"),
    ],
)
def test_gpu_allocation_from_the_environment(environ, expected):
    assert gpu_allocation(environ) == expected


@needs_no_cuda
def test_a_gpu_job_never_folds_on_the_cpu_by_accident():
    assert resolve_device("auto", {}) == torch.device("cpu")  # nothing asked for a GPU
    assert resolve_device("cpu", {"CUDA_VISIBLE_DEVICES": "0"}) == torch.device("cpu")  # explicit: obeyed (Slurm tests)
    with pytest.raises(GpuUnavailableError) as info:
        resolve_device("auto", {"CUDA_VISIBLE_DEVICES": "0"})
    text = str(info.value)
    assert "CUDA_VISIBLE_DEVICES=0" in text and "CPU-only build" in text
    assert "envs/foldatlas-gpu.yaml" in text and "fold.device: cpu" in text
    with pytest.raises(GpuUnavailableError, match="fold.device is 'cuda'"):
        resolve_device("cuda", {})
    with pytest.raises(GpuUnavailableError, match="SLURM_JOB_GPUS=1"):
        resolve_device("auto", {"SLURM_JOB_GPUS": "1"})


def test_language_model_precision():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_lm_dtype("auto", cuda) == torch.float16  # the reference: esm.half()
    assert resolve_lm_dtype("auto", cpu) == torch.float32
    assert resolve_lm_dtype("bf16", cpu) == torch.bfloat16
    # native bf16 from Ampere (8.0) on; V100 (7.0) and T4 (7.5) would only emulate it
    assert [bf16_native(c) for c in [(7, 0), (7, 5), (8, 0), (8, 9), (9, 0)]] == [False, False, True, True, True]
    with pytest.raises(ConfigError, match="fold.precision"):
        resolve_lm_dtype("fp8", cpu)


def test_rotary_frequencies_stay_fp32_when_the_language_model_is_cast():
    from transformers import EsmForProteinFolding

    torch.manual_seed(0)
    model = EsmForProteinFolding(tiny_esmfold_config()).eval()
    cast_for_inference(model, torch.bfloat16)
    lm = {n for n, _ in model.esm.named_parameters()}
    assert {p.dtype for n, p in model.esm.named_parameters()} == {torch.bfloat16}
    assert {p.dtype for n, p in model.named_parameters() if n.removeprefix("esm.") not in lm} == {torch.float32}
    rotary = model.esm.rotary_embeddings
    fresh, _ = rotary.compute_default_rope_parameters(rotary.config)
    assert rotary.inv_freq.dtype == torch.float32 and torch.equal(rotary.inv_freq, fresh)
    # why: ESM-2 3B's frequencies rounded to bf16 put the phase at position 1024 off by ~0.5 rad
    real = type(rotary)(full_esmfold_config())
    exact = 1024 * real.inv_freq.double()
    assert (1024 * real.inv_freq.to(torch.bfloat16).double() - exact).abs().max() > 0.3
    with torch.inference_mode():
        assert torch.isfinite(model.infer(["MKTAYIAKQRQISFVK"])["positions"]).all()


def test_weights_checksum_is_content_cached_and_changes_with_the_weights(tmp_path, caplog):
    a = save_tiny_weights(tmp_path / "a", seed=1)
    b = save_tiny_weights(tmp_path / "b", seed=2)
    with caplog.at_level(logging.INFO, logger="foldatlas.model"):
        first = weights_checksum(a)
    assert sum("computing the checksum" in r.getMessage() for r in caplog.records) == 2  # config + safetensors
    cached = json.loads((a / CHECKSUM_SIDECAR).read_text())["files"]
    assert sorted(cached) == ["config.json", "model.safetensors"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="foldatlas.model"):
        assert weights_checksum(a) == first  # from the sidecar: nothing read again
    assert not any("computing the checksum" in r.getMessage() for r in caplog.records)
    assert weights_checksum(b) != first
    # a weight file replaced in place (other size or mtime) is hashed again
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
    os.utime(a / "model.safetensors", ns=(1, 1))
    assert weights_checksum(a) != first
    # identity is content, not place: a copy of b elsewhere has b's checksum
    shutil.copytree(b, tmp_path / "copy_of_b")
    assert weights_checksum(tmp_path / "copy_of_b") == weights_checksum(b)


def test_esmfold_weights_folder_loads_with_its_identity(tmp_path):
    folder = save_tiny_weights(tmp_path / "w", seed=1)
    loaded = load_folding_model("esmfold_v1", weights=str(folder), device="cpu")
    assert loaded.model_id == "facebook/esmfold_v1" and loaded.model_version == "local"
    assert loaded.weights_checksum == weights_checksum(folder)
    assert loaded.lm_precision == "fp32" and loaded.tf32 is False
    assert load_folding_model("tiny", device="cpu").weights_checksum != loaded.weights_checksum


def test_esmfold_from_the_hugging_face_cache(tmp_path, monkeypatch):
    """The cache's snapshot folder is found offline; its commit is the revision."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--facebook--esmfold_v1"
    snapshot = save_tiny_weights(repo / "snapshots" / "0123abcd", seed=3)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_folding_model("esmfold_v1", device="cpu")
    assert loaded.model_version == "0123abcd" and loaded.weights_checksum == weights_checksum(snapshot)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelWeightsError, match="ESMFold weights not found"):
        load_folding_model("esmfold_v1", device="cpu")


def test_cuda_allocator_setting_respects_the_user():
    env: dict[str, str] = {}
    assert configure_cuda_allocator(env) == ALLOC_CONF and env == {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    mine = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:512"}
    assert configure_cuda_allocator(mine) is None and mine == {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:512"}
    assert configure_cuda_allocator({"PYTORCH_ALLOC_CONF": "expandable_segments:False"}) is None


def test_memory_model_is_cubic_until_chunked():
    m = ESMFOLD_V1_MEMORY
    # per pair entry of one trunk block: ~4.8 KB + 32 B x min(L, chunk) (measured on the CPU)
    assert m.pair_entry_bytes(512, None) == pytest.approx(4800 + 32 * 512)
    assert m.pair_entry_bytes(512, 128) == pytest.approx(4800 + 32 * 128)
    assert m.estimate(2, 300, None) == 2 * m.estimate(1, 300, None)
    assert m.estimate(1, 1024, None) > 6 * m.estimate(1, 512, None)  # cubic term: a quadratic model would say 4x
    budget = 40 * 2**30
    longest = m.longest_unchunked(budget)
    assert m.estimate(1, longest, None) <= budget < m.estimate(1, longest + 1, None)
    assert 900 < longest < 1200  # what fits unchunked on a 40 GB card's budget
    assert m.chunk_for(1, longest, budget) is None and m.chunk_for(1, longest + 200, budget) in CHUNK_CHOICES


def test_make_batches_respects_every_budget():
    lengths = [50] * 5 + [100] * 4 + [400]
    batches = make_batches(lengths, max_tokens=300, max_pair_tokens=10**9, max_batch_size=4)
    assert batches == [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9]]
    assert sorted(i for b in batches for i in b) == list(range(10))
    with pytest.raises(ValueError, match="max_tokens"):
        make_batches(lengths, max_tokens=0, max_pair_tokens=1, max_batch_size=1)
