"""Rule foldseek_cluster: Atlas-style structural clusters (the best structure of each
sequence cluster, clustered by foldseek) of the high-confidence structures."""

from foldatlas.annotate import tool_binary
from foldatlas.clustering import structural_clusters
from foldatlas.layout import Layout
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    structural_clusters(
        tool_binary("foldseek", sm.params.binary),
        sm.input.db,
        sm.output.clusters,
        metadata=Layout.from_config(sm.params.output).atlas.metadata,
        seq_clusters=sm.input.seq_clusters or None,
        settings=FoldseekSettings.from_config(sm.params.foldseek),
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
    )
