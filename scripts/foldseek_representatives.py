"""Rule foldseek_representatives: the best structure of each sequence cluster (every
high-confidence structure without mmseqs), copied from the buckets' shard databases into
one foldseek database, with the table of every high-confidence structure's representative."""

from foldatlas.clustering import select_representatives
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    select_representatives(
        sm.input.db,
        sm.output.folder,
        metadata=list(sm.input.metadata),
        seq_clusters=sm.input.seq_clusters or None,
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
    )
