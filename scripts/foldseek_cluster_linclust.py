"""Rule foldseek_cluster_linclust: foldseek cluster's pre-clustering of the
representatives, and the options foldseek computes for each later round (a cascade of
jobs, foldseek.cluster.shards > 1)."""

import shutil

from foldatlas.annotate import cluster_args, tool_binary
from foldatlas.cascade import cluster_linclust
from foldatlas.clustering import representatives_db
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings
from foldatlas.sizing import split_memory_limit

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    settings = FoldseekSettings.from_config(sm.params.foldseek).cluster
    cluster_linclust(
        tool_binary("foldseek", sm.params.binary),
        representatives_db(sm.input.representatives),
        sm.output.folder,
        cluster_args=cluster_args(settings),
        rounds=settings.steps,
        threads=sm.threads,
        split=["--split-memory-limit", split_memory_limit(sm.resources.mem_mb)],
        scratch=sm.params.scratch,
    )
    shutil.rmtree(sm.params.scratch, ignore_errors=True)
