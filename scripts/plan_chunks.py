"""Rule plan_chunks: deduplicate all records, leave out what the store holds, and cut
the new unique sequences into chunks of the store's next release."""

from foldatlas.chunking import plan_release_chunks
from foldatlas.layout import StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import ChunkSettings, IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    plan_release_chunks(
        sm.input.parts,
        store=StoreLayout(sm.params.store, sm.params.fingerprint),
        release=sm.params.release,
        redundancy=IngestSettings.from_config(sm.params.ingest).redundancy,
        mmseqs=sm.params.mmseqs,
        outputs_key=sm.params.outputs_key,
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
