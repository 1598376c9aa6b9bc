"""Rule plan_chunks: deduplicate all records, leave out what the store holds, and cut
the new unique sequences into chunks of the store's next release; with
ingest.bucket_digits, number and join the chunks the plan_bucket jobs planned."""

from foldatlas.bucket_plans import number_bucket_plans
from foldatlas.chunking import plan_release_chunks
from foldatlas.layout import StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import ChunkSettings, IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    ingest = IngestSettings.from_config(sm.params.ingest)
    store = StoreLayout(sm.params.store, sm.params.fingerprint)
    outputs = dict(records_out=sm.output.records, sequences_out=sm.output.sequences, chunks_dir=sm.output.chunks, inputs_out=sm.output.inputs)
    if ingest.bucket_digits:
        number_bucket_plans(sm.input.buckets, store=store, release=sm.params.release, outputs_key=sm.params.outputs_key, counts=sm.input.counts, **outputs)
    else:
        plan_release_chunks(
            sm.input.parts, store=store, release=sm.params.release, redundancy=ingest.redundancy, mmseqs=sm.params.mmseqs,
            outputs_key=sm.params.outputs_key, settings=ChunkSettings.from_config(sm.params.chunks), memory_gb=ingest.memory_gb,
            threads=sm.threads, scratch_dir=sm.params.scratch, counts=sm.input.counts, **outputs,
        )  # fmt: skip
