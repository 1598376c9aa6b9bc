"""Rule foldseek_cluster_round: one round of the structural clustering's cascade, its
shards' alignments merged and clustered (foldseek clust)."""

import shutil

from foldatlas.annotate import tool_binary
from foldatlas.cascade import cluster_round
from foldatlas.clustering import representatives_db
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    cluster_round(
        tool_binary("foldseek", sm.params.binary),
        representatives_db(sm.input.representatives),
        sm.input.previous,
        sm.input.searches,
        sm.output.folder,
        linclust=sm.input.linclust,
        round_=int(sm.wildcards.round),
        threads=sm.threads,
        scratch=sm.params.scratch,
    )
    shutil.rmtree(sm.params.scratch, ignore_errors=True)
