"""Rule plan_bucket: deduplicate one checksum bucket's records of every input file, leave
out what the store holds, and cut its new unique sequences into chunks."""

from foldatlas.bucket_plans import plan_bucket
from foldatlas.layout import StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import ChunkSettings, IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    ingest = IngestSettings.from_config(sm.params.ingest)
    plan_bucket(
        sm.wildcards.bucket,
        sm.input.parts,
        store=StoreLayout(sm.params.store, sm.params.fingerprint),
        release=sm.params.release,
        outputs_key=sm.params.outputs_key,
        out=sm.output.plan,
        settings=ChunkSettings.from_config(sm.params.chunks),
        ingest_digits=ingest.bucket_digits,
        memory_gb=ingest.memory_gb,
        threads=sm.threads,
        scratch_dir=sm.params.scratch,
    )
