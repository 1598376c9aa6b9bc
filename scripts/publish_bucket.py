"""Rule publish_bucket: check one checksum bucket's new chunks and stage its part of the release."""

from foldatlas.annotate import duckdb_gb
from foldatlas.layout import RELEASE_FILE, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.store import publish_bucket

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    publish_bucket(
        StoreLayout(sm.params.store, sm.params.fingerprint),
        sm.wildcards.bucket,
        planned=f"{sm.input.chunks}/{RELEASE_FILE}",
        sequences=sm.input.sequences,
        inputs=sm.input.inputs,
        part=sm.output.part,
        scratch_dir=sm.params.scratch,
        # DuckDB's share of the job's memory (grows with the attempt), on the job's threads
        memory_gb=duckdb_gb(sm.resources.mem_mb) or 1.0,
        threads=sm.threads,
    )
