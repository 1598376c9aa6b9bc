"""Rule repack_bins: one checksum bucket's structures again, in shards per ESM Atlas bin
of pTM x pLDDT (atlas.bins), with their index."""

from foldatlas.atlas import unfinish
from foldatlas.bins import repack_bins
from foldatlas.layout import Layout
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    layout = Layout.from_config(sm.params.output).atlas
    unfinish(layout)  # the finish counts the bins again
    repack_bins(
        bucket=sm.wildcards.bucket, index=sm.input.index, predictions=sm.input.predictions, atlas_root=layout.root,
        out_dir=sm.output.shards, index_out=sm.output.index, shard_size=sm.params.shard_size,
    )  # fmt: skip
