"""Rule foldseek_cluster: structural clusters of the high-confidence structures."""

from foldatlas.annotate import foldseek_cluster, tool_binary
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    foldseek_cluster(
        tool_binary("foldseek", sm.params.binary),
        sm.input.db,
        sm.output.clusters,
        metadata=sm.input.metadata,
        settings=FoldseekSettings.from_config(sm.params.foldseek),
        threads=sm.threads,
    )
