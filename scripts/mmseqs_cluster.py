"""Rule mmseqs_cluster: sequence clusters of the unique sequences (mmseqs2 easy-linclust)."""

from foldatlas.annotate import mmseqs_linclust
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    m = snakemake.params.mmseqs  # noqa: F821
    mmseqs_linclust(
        snakemake.params.binary,  # noqa: F821
        snakemake.input.sequences,  # noqa: F821
        snakemake.output.clusters,  # noqa: F821
        min_seq_id=m["min_seq_id"],
        coverage=m["coverage"],
        cov_mode=m["cov_mode"],
        threads=snakemake.threads,  # noqa: F821
    )
