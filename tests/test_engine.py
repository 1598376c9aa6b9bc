"""Fold engine on the tiny real-architecture ESMFold (CPU)."""

from __future__ import annotations

import dataclasses
import io
import logging
import weakref

import numpy as np
import pytest
import torch

from conftest import engine_settings
from foldatlas import faults
from foldatlas.engine import CHUNK_SIZE_FALLBACKS, MAX_CONSECUTIVE_FAILURES, OOM_BUDGET_FACTOR, FoldEngine, SystemicFoldError, is_oom
from foldatlas.errors import ConfigError
from foldatlas.fasta import sequence_checksum
from foldatlas.prediction import SeqItem
from foldatlas.structures import pdb_text

#: Agreement of two computations that should be identical up to float32 rounding.
ATOL = 1e-4


def items(seqs):
    return [SeqItem(sequence_checksum(s.encode()), s) for s in seqs]


@pytest.fixture(scope="module")
def engine(tiny_model):
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1, save_pae=True, layers=(-1, 0, 1)))
    yield eng
    eng.close()


def _tiny_engine(dtype, initializer_range):
    from transformers import EsmForProteinFolding

    from foldatlas.model import LoadedModel, tiny_esmfold_config

    cfg = tiny_esmfold_config()
    cfg.initializer_range = initializer_range
    torch.manual_seed(0)
    model = EsmForProteinFolding(cfg).eval().to(dtype)
    loaded = LoadedModel(model, "tiny", "test", torch.device("cpu"), dtype)
    return FoldEngine(loaded, engine_settings(num_recycles=1, save_pae=True, layers=(-1, 0, 1)))


@pytest.mark.parametrize(
    "dtype, initializer_range, atol",
    [
        # float64: padding is masked exactly, batched and single runs agree to rounding
        (torch.float64, 0.5, 1e-9),
        # float32 with weights at the scale of trained ones: rounding only
        (torch.float32, 0.02, 1e-4),
    ],
)
def test_batched_equals_single(demo_sequences, dtype, initializer_range, atol):
    eng = _tiny_engine(dtype, initializer_range)
    seqs = [s[: n] for s, n in zip(demo_sequences, (30, 90, 45, 70))]  # unsorted lengths: much padding
    batched = eng.predict(items(seqs))
    for seq, b in zip(seqs, batched):
        (s,) = eng.predict(items([seq]))
        assert b.batch_size == 4 and s.batch_size == 1
        assert b.length == len(seq) == s.positions.shape[0]
        np.testing.assert_allclose(b.positions, s.positions, atol=atol * 10)  # coordinates are ~30 A
        np.testing.assert_allclose(b.atom_plddt, s.atom_plddt, atol=atol)
        np.testing.assert_allclose(b.pae.astype(np.float32), s.pae.astype(np.float32), atol=0.032)  # 2 float16 ulps
        assert b.ptm == pytest.approx(s.ptm, abs=atol)
        assert b.plddt == pytest.approx(s.plddt, abs=atol)
        for layer in (0, 1, 2):
            np.testing.assert_allclose(b.embeddings[layer], s.embeddings[layer], atol=atol)
    eng.close()


def test_ptm_is_per_sequence_not_the_batch_value(engine, tiny_model, demo_sequences):
    seqs = demo_sequences[:4]
    preds = engine.predict(items(seqs))
    out = tiny_model.model.infer(seqs)  # transformers' batched ptm: one number for the batch
    assert out["ptm"].numel() == 1
    assert len({round(p.ptm, 6) for p in preds}) == 4


def test_confidence_definitions(engine, demo_sequences):
    (p,) = engine.predict(items(demo_sequences[:1]))
    exists = p.atom_mask
    assert p.plddt == pytest.approx(float(p.atom_plddt[exists].mean()), abs=1e-6)
    assert p.plddt_ca == pytest.approx(float(p.atom_plddt[:, 1].mean()), abs=1e-6)
    assert p.num_conf == int((p.atom_plddt[:, 1] > 0.7).sum())
    assert 0.0 <= p.plddt <= 1.0 and 0.0 <= p.ptm <= 1.0
    assert p.max_pae == pytest.approx(float(p.pae.astype(np.float32).max()), abs=0.02)


def test_embeddings_equal_a_separate_language_model_run(engine, tiny_model, demo_sequences):
    seq = demo_sequences[2]
    (p,) = engine.predict(items([seq]))
    m = tiny_model.model
    vocab = m.config.vocab_list
    tokens = torch.tensor([[vocab.index("<cls>")] + [vocab.index(c) for c in seq] + [vocab.index("<eos>")]])
    with torch.no_grad():
        hs = m.esm(tokens, attention_mask=torch.ones_like(tokens), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(p.embeddings[2], hs[-1][0, 1:-1].mean(0).numpy(), atol=ATOL)
    np.testing.assert_allclose(p.embeddings[0], hs[0][0, 1:-1].mean(0).numpy(), atol=ATOL)


def test_pdb_parses_with_gemmi_and_biopython(engine, demo_sequences):
    import gemmi
    from Bio.PDB import PDBParser

    seq = demo_sequences[0][:30] + "XB" + demo_sequences[0][30:50]
    (p,) = engine.predict(items([seq]))
    text = pdb_text(p.aatype, p.positions, p.atom_mask, p.atom_plddt)
    st = gemmi.read_pdb_string(text)
    atoms = [a for r in st[0]["A"] for a in r]
    assert len(atoms) == int(p.atom_mask.sum())
    assert len(st[0]["A"]) == len(seq)  # X and B become UNK with the backbone ESMFold predicts
    assert [sorted(a.name for a in st[0]["A"][i]) for i in (30, 31)] == [["C", "CA", "N", "O"]] * 2
    assert [st[0]["A"][i].name for i in (30, 31)] == ["UNK", "UNK"]
    b = np.array([a.b_iso for a in atoms])
    # two decimals, rounded from float64 in the PDB and from float32 here: one step apart at most
    np.testing.assert_allclose(b, np.round(p.atom_plddt[p.atom_mask] * 100, 2), atol=0.0101)
    assert b.max() > 1.0  # 0-100 scale, not 0-1
    ter = [ln for ln in text.splitlines() if ln.startswith("TER")]
    last_res = st[0]["A"][len(st[0]["A"]) - 1]
    assert len(ter) == 1 and ter[0].split()[2:] == [last_res.name, "A", str(len(seq))]
    bio = PDBParser(QUIET=True).get_structure("x", io.StringIO(text))
    assert sum(1 for _ in bio.get_atoms()) == len(atoms)
    assert [r.get_resname() for r in bio.get_residues()][:3] == [gemmi.find_tabulated_residue(c).name for c in ("MET",)] + [
        st[0]["A"][1].name,
        st[0]["A"][2].name,
    ]


def test_all_unknown_sequence_folds_to_a_backbone(engine):
    (p,) = engine.predict(items(["X" * 20]))
    assert p.status == "ok" and p.atom_mask.sum() == 4 * 20
    assert p.atom_mask[:, [0, 1, 2, 4]].all()  # N, CA, C, O of every residue (atom37 order)
    assert 0 < p.plddt < 1 and 0 < p.plddt_ca < 1


def test_oom_splits_batch_and_loses_nothing(tiny_model, demo_sequences):
    seqs = demo_sequences[:8]
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1))
    with faults.injected(oom_tokens=2 * max(map(len, seqs))):  # at most 2 sequences fit
        preds = eng.predict(items(seqs))
    assert [p.checksum for p in preds] == [it.checksum for it in items(seqs)]
    assert all(p.status == "ok" for p in preds)
    assert max(p.batch_size for p in preds) <= 2


def test_oom_single_sequence_retries_smaller_chunks(tiny_model, demo_sequences):
    long_seq = max(demo_sequences[:10], key=len)
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1, chunk_size=0))
    with faults.injected(oom_min_length=len(long_seq), oom_max_chunk_size=64):
        preds = eng.predict(items(demo_sequences[:10]))
    byseq = {p.checksum: p for p in preds}
    p = byseq[sequence_checksum(long_seq.encode())]
    assert p.status == "ok" and p.chunk_size == 64
    assert all(q.status == "ok" for q in preds)


def test_oom_that_never_fits_is_recorded(tiny_model, demo_sequences):
    long_seq = max(demo_sequences[:10], key=len)
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1))
    with faults.injected(oom_min_length=len(long_seq), oom_max_chunk_size=0):
        preds = eng.predict(items(demo_sequences[:10]))
    failed = [p for p in preds if p.status != "ok"]
    assert len(preds) == 10 and len(failed) == 1
    assert failed[0].status == "oom" and failed[0].chunk_size == CHUNK_SIZE_FALLBACKS[-1]
    assert "out of memory" in failed[0].error


def test_per_sequence_error_is_isolated_and_recorded(tiny_model, demo_sequences):
    bad = items(demo_sequences[3:4])[0].checksum
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1))
    with faults.injected(error_checksums=frozenset({bad})):
        preds = eng.predict(items(demo_sequences[:8]))
    assert [p.status for p in preds].count("ok") == 7
    (err,) = [p for p in preds if p.status == "error"]
    assert err.checksum == bad and "injected error" in err.error


def test_systemic_failure_stops_the_job(tiny_model, demo_sequences):
    seqs = demo_sequences[: MAX_CONSECUTIVE_FAILURES + 2]
    every = frozenset(it.checksum for it in items(seqs))
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=1, max_batch_size=4))
    with faults.injected(error_checksums=every), pytest.raises(SystemicFoldError, match="in a row"):
        for k in range(0, len(seqs), 4):
            eng.predict(items(seqs[k : k + 4]))


def test_fault_plan_from_env():
    plan = faults.FaultPlan.from_env({"FOLDATLAS_INJECT_FAULTS": '{"oom_tokens": 10, "error_checksums": ["a"]}'})
    assert plan.oom_tokens == 10 and plan.error_checksums == frozenset({"a"})
    assert faults.FaultPlan.from_env({}) == faults.FaultPlan()
    with pytest.raises(ConfigError, match="unknown keys"):
        faults.FaultPlan.from_env({"FOLDATLAS_INJECT_FAULTS": '{"unknown": 1}'})


def test_oom_inside_the_trunk_frees_the_failed_attempt_before_the_retry(tiny_model, demo_sequences):
    """An OOM raised deep in the trunk after a large allocation: by the time the retry's
    forward starts, nothing of the failed attempt may be alive (no gc.collect here)."""
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=0))
    model = tiny_model.model
    refs: list[weakref.ref] = []
    alive_at_retry: list[int] = []

    def explode(module, inputs, output):
        if not refs:
            big = torch.ones(32, 1024, 1024)  # 128 MiB, referenced only by this frame
            refs.append(weakref.ref(big))
            refs.extend(weakref.ref(t) for t in output)  # the block's sequence and pair states
            raise torch.OutOfMemoryError("injected inside the trunk after a large allocation")

    def before_forward(module, args, kwargs):
        if refs:
            alive_at_retry.append(sum(r() is not None for r in refs))

    hooks = [model.trunk.blocks[0].register_forward_hook(explode), model.register_forward_pre_hook(before_forward, with_kwargs=True)]
    try:
        preds = eng.predict(items([s[:24] for s in demo_sequences[:2]]))
    finally:
        for h in hooks:
            h.remove()
        eng.close()
    assert len(refs) == 3 and alive_at_retry == [0, 0]  # the batch was split; both halves retried clean
    assert [p.status for p in preds] == ["ok", "ok"] and [p.batch_size for p in preds] == [1, 1]


def test_default_recycles_equal_the_reference_trunk_passes(tiny_model):
    """fold.num_recycles' default runs as many trunk passes as ESMFold's own default
    (num_recycles=None: config.max_recycles, 4 for ESMFold v1)."""
    from transformers.models.esm.configuration_esm import TrunkConfig

    from foldatlas.settings import FoldSettings

    model, seq = tiny_model.model, "MKTAYIAKQRQISFVKSHFSRQ"
    passes: list[int] = []
    hook = model.trunk.blocks[0].register_forward_hook(lambda *a: passes.append(1))  # once per trunk pass
    eng = FoldEngine(tiny_model, engine_settings())  # the schema's defaults
    try:
        eng.predict(items([seq]))
        ours = len(passes)
        passes.clear()
        with torch.no_grad():
            model.infer([seq])  # transformers' reference call: num_recycles=None
        reference = len(passes)
    finally:
        hook.remove()
        eng.close()
    assert ours == reference == TrunkConfig().max_recycles == 4
    assert FoldSettings.from_config({}).num_recycles + 1 == reference  # N recycles = N+1 passes


def test_oom_records_do_not_stop_the_job(tiny_model, demo_sequences):
    """Long sequences that never fit are recorded as oom however many come in a row."""
    seqs = [s[:20] for s in demo_sequences[: MAX_CONSECUTIVE_FAILURES + 4]]
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=0, max_batch_size=4))
    with faults.injected(oom_min_length=1, oom_max_chunk_size=0):
        preds = [p for k in range(0, len(seqs), 4) for p in eng.predict(items(seqs[k : k + 4]))]
    eng.close()
    assert [p.status for p in preds] == ["oom"] * len(seqs)


def test_allocation_failures_are_oom_and_device_faults_stop(tiny_model):
    cublas = RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
    cudnn = RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")
    assert is_oom(cublas) and is_oom(cudnn) and is_oom(torch.OutOfMemoryError("x"))
    assert not is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=0))
    raised: list[BaseException] = [cublas]

    def fail_once(module, inputs, output):
        if raised:
            raise raised.pop(0)

    hook = tiny_model.model.trunk.register_forward_hook(fail_once)
    try:
        (p,) = eng.predict(items(["MKTAYIAKQRQISFVK"]))  # cuBLAS allocation failure: retried as an OOM
        assert p.status == "ok" and p.chunk_size == 32  # CPU auto chunk 64 -> retried at 32
        raised.append(RuntimeError("CUDA error: an illegal memory access was encountered"))
        with pytest.raises(SystemicFoldError, match="illegal memory access"):
            eng.predict(items(["MKTAYIAKQRQISFVK"]))
    finally:
        hook.remove()
        eng.close()


def test_memory_budget_sizes_batches_and_drops_after_an_oom(tiny_model, demo_sequences, caplog):
    seqs = [s[:30] for s in demo_sequences[:10]]
    probe = FoldEngine(tiny_model, engine_settings())
    budget = probe.memory.estimate(4, 30, probe.chunk_size_for(4, 30))
    probe.close()
    eng = FoldEngine(tiny_model, dataclasses.replace(engine_settings(num_recycles=0), memory_budget=budget))
    assert [len(b) for b in eng.batches(items(seqs))] == [4, 4, 2]  # sized by the memory model
    preds = []
    with faults.injected(oom_tokens=3 * 30), caplog.at_level(logging.WARNING, logger="foldatlas.engine"):
        for batch in eng.batches(items(seqs)):
            preds += eng.predict(batch)
    eng.close()
    # the first batch of 4 ran out of memory: split in 2 + 2; the budget dropped, later batches hold 3
    assert [p.batch_size for p in preds] == [2] * 4 + [3] * 6
    assert all(p.status == "ok" for p in preds)
    assert eng.budget == int(budget * OOM_BUDGET_FACTOR)
    assert sum("memory budget lowered" in r.getMessage() for r in caplog.records) == 1


def test_embedding_hook_keeps_only_the_requested_layers(tiny_model):
    eng = FoldEngine(tiny_model, engine_settings(num_recycles=0, layers=(-1, 1)))
    seen: list[object] = []
    hook = tiny_model.model.trunk.register_forward_pre_hook(lambda *a: seen.append(sorted(eng._captured)))
    try:
        (p,) = eng.predict(items(["MKTAYIAKQRQISFVK"]))
    finally:
        hook.remove()
        eng.close()
    assert seen == [[1, 2]]  # while the trunk runs, only layers 1 and 2 (= -1) of 0..2 are held
    assert sorted(p.embeddings) == [1, 2]


@pytest.mark.parametrize("free_memory", [None, 80 * 2**30], ids=["cpu", "gpu"])
def test_operational_fold_keys_never_change_what_the_engine_records(free_memory):
    """fold_chunk reruns only when fold_outputs_key changes, and that key leaves out
    FoldSettings.OPERATIONAL: each of those keys must leave the engine's result settings
    (what a resume must share) unchanged, and each other engine key must change them."""
    from foldatlas.engine import EngineSettings
    from foldatlas.settings import EmbeddingSettings, FoldSettings

    base = {"model": "tiny", "device": "cpu"}
    other = {"max_tokens_per_batch": 512, "max_pair_tokens_per_batch": 4096, "gpu_memory_fraction": 0.5, "max_batch_size": 4,
             "commit_seconds": 7, "progress_seconds": 3, "threads": 3, "mem_mb": 3000, "chunks_per_job": 4,
             "num_recycles": 1, "chunk_size": 64, "save_pae": True, "artefact_max_plddt": 0.5}  # fmt: skip
    assert set(FoldSettings.OPERATIONAL) <= set(other)
    emb = EmbeddingSettings.from_config({})

    def recorded(**change):
        return EngineSettings.resolve(FoldSettings.from_config({**base, **change}), emb, free_memory=free_memory).result_settings()

    for key, value in other.items():
        same = recorded(**{key: value}) == recorded()
        assert same == (key in FoldSettings.OPERATIONAL), key
