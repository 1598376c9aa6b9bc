"""Rule foldseek_bins_db: one foldseek database per ESM Atlas bin of one checksum
bucket's bin shards (atlas.bins); the databases of another bucket split are removed."""

from pathlib import Path

from foldatlas.annotate import bins_db, remove_other_buckets, tool_binary
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    bins_db(tool_binary("foldseek", sm.params.binary), sm.input.shards, sm.output.db, threads=sm.threads)
    remove_other_buckets(Path(sm.output.db).parent, sm.params.buckets)
