"""Rule foldseek_cluster_search: one query shard of one round of the structural
clustering's cascade (prefilter and alignment against all the round's representatives)."""

import shutil

from foldatlas.annotate import tool_binary
from foldatlas.cascade import search_shard
from foldatlas.clustering import representatives_db
from foldatlas.logs import rule_script
from foldatlas.sizing import split_memory_limit

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    search_shard(
        tool_binary("foldseek", sm.params.binary),
        representatives_db(sm.input.representatives),
        sm.input.previous,
        sm.output.folder,
        linclust=sm.input.linclust,
        round_=int(sm.wildcards.round),
        shard=int(sm.wildcards.shard),
        shards=sm.params.shards,
        threads=sm.threads,
        split=split_memory_limit(sm.resources.mem_mb),
        scratch=sm.params.scratch,
    )
    shutil.rmtree(sm.params.scratch, ignore_errors=True)
