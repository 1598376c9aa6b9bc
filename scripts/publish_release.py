"""Rule publish_release: check the new chunks and publish them as a release of the store."""

from foldatlas.annotate import duckdb_gb
from foldatlas.layout import RELEASE_FILE, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.store import publish_release

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    publish_release(
        StoreLayout(sm.params.store, sm.params.fingerprint),
        planned=f"{sm.input.chunks}/{RELEASE_FILE}",
        sequences=sm.input.sequences,
        inputs=sm.input.inputs,
        receipt=sm.output.receipt,
        scratch_dir=sm.params.scratch,
        # DuckDB's share of the job's memory (grows with the attempt), on the job's threads
        memory_gb=duckdb_gb(sm.resources.mem_mb) or 1.0,
        threads=sm.threads,
    )
