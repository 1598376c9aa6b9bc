"""Rule foldseek_target_db: a search target given as structures, made a foldseek database
once for every bucket's search."""

from foldatlas.annotate import target_db, tool_binary
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    target_db(tool_binary("foldseek", sm.params.binary), sm.input.target, sm.output.db, threads=sm.threads)
