"""Rule assemble_bucket: the structures, index, pLDDT and embeddings of one checksum
bucket of the atlas, read from the store."""

import shutil

from foldatlas.atlas import assemble_bucket
from foldatlas.atomic import write_json
from foldatlas.layout import Layout, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings
from foldatlas.store import bucket_sources

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm, bucket = snakemake, snakemake.wildcards.bucket  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    scratch = layout.scratch(f"assemble_bucket/{bucket}")
    part = assemble_bucket(
        bucket=bucket, **bucket_sources(StoreLayout(sm.params.store, sm.params.fingerprint), sm.input.sequences, bucket, scratch / "sources"),
        outputs=layout.atlas, predictions=sm.output.predictions, filter=FilterSettings.from_config(sm.params.filter),
        atlas=AtlasSettings.from_config(sm.params.atlas), structures=StructureSettings.from_config(sm.params.structures),
        threads=sm.threads, scratch_dir=scratch / "work", outputs_key=sm.params.outputs_key,
    )  # fmt: skip
    write_json(sm.output.part, part)
    shutil.rmtree(scratch, ignore_errors=True)
