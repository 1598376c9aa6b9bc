"""Rule bucket_metadata: one checksum bucket's file of metadata.parquet."""

from pathlib import Path

from foldatlas.atlas import bucket_metadata
from foldatlas.layout import Layout
from foldatlas.logs import rule_script
from foldatlas.settings import AtlasSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm, bucket = snakemake, snakemake.wildcards.bucket  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    bucket_metadata(
        bucket=bucket, records=sm.input.records, sequences=sm.input.sequences, inputs=sm.input.inputs, outputs=layout.atlas,
        predictions={Path(p).name.split(".")[0]: p for p in sm.input.predictions}, part=sm.input.part,
        atlas=AtlasSettings.from_config(sm.params.atlas), threads=sm.threads, scratch_dir=layout.scratch(f"bucket_metadata/{bucket}"),
    )  # fmt: skip
