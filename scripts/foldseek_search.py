"""Rule foldseek_search: the atlas against the configured reference databases."""

from foldatlas.annotate import foldseek_search, tool_binary
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    foldseek_search(
        tool_binary("foldseek", sm.params.binary),
        sm.input.db,
        sm.output.hits,
        search=FoldseekSettings.from_config(sm.params.foldseek).search,
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
    )
