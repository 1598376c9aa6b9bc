"""Rule plan_chunks: deduplicate all records and cut unique sequences into chunks."""

from foldatlas.chunking import plan_chunks
from foldatlas.logs import rule_script
from foldatlas.settings import ChunkSettings, IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
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
    )
