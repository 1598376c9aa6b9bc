"""Rule repack_bins: one checksum bucket's structures again, in shards per ESM Atlas bin
of pTM x pLDDT (atlas.bins), with their index."""

import shutil

from foldatlas.atlas import unfinish
from foldatlas.bins import repack_bins
from foldatlas.layout import Layout
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm, bucket = snakemake, snakemake.wildcards.bucket  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    unfinish(layout.atlas)  # the finish counts the bins again
    scratch = layout.scratch(f"repack_bins/{bucket}")
    shutil.rmtree(scratch, ignore_errors=True)  # a killed run's spill files
    repack_bins(
        bucket=bucket, index=sm.input.index, predictions=sm.input.predictions, atlas_root=layout.atlas.root,
        out_dir=sm.output.shards, index_out=sm.output.index, shard_size=sm.params.shard_size, scratch_dir=scratch,
    )  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
