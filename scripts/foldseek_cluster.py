"""Rule foldseek_cluster: Atlas-style structural clusters (the best structure of each
sequence cluster, clustered by foldseek) of the high-confidence structures: foldseek
cluster in this job, or the cascade's rounds merged (foldseek.cluster.shards > 1)."""

from foldatlas.annotate import tool_binary
from foldatlas.clustering import structural_clusters
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    cascade = (sm.input.linclust, list(sm.input.rounds)) if "linclust" in sm.input.keys() else None
    structural_clusters(
        tool_binary("foldseek", sm.params.binary),
        sm.input.representatives,
        sm.output.clusters,
        settings=FoldseekSettings.from_config(sm.params.foldseek),
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
        cascade=cascade,
    )
