"""Rule plan_chunks: deduplicate all records, leave out what the store holds, and cut
the new unique sequences into chunks."""

from dataclasses import asdict

from foldatlas.chunking import plan_chunks
from foldatlas.layout import StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import ChunkSettings, IngestSettings
from foldatlas.store import plan_release

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    release, known = plan_release(StoreLayout(sm.params.store, sm.params.fingerprint), sm.params.release, sm.params.outputs_key)
    plan_chunks(
        sm.input.parts,
        records_out=sm.output.records,
        sequences_out=sm.output.sequences,
        chunks_dir=sm.output.chunks,
        settings=ChunkSettings.from_config(sm.params.chunks),
        memory_gb=IngestSettings.from_config(sm.params.ingest).memory_gb,
        threads=sm.threads,
        scratch_dir=sm.params.scratch,
        counts=sm.input.counts,
        inputs_out=sm.output.inputs,
        known=known,
        release=asdict(release),
    )
