"""Rule foldseek_createdb: one foldseek database per high-confidence shard, read straight from the .tar."""

from foldatlas.annotate import atlas_db, tool_binary
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    atlas_db(tool_binary("foldseek", sm.params.binary), sm.params.structures, sm.output.db, threads=sm.threads)
