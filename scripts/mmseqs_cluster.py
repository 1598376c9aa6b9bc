"""Rule mmseqs_cluster: sequence clusters of the unique sequences (mmseqs2 easy-linclust)."""

from foldatlas.annotate import mmseqs_linclust, tool_binary
from foldatlas.logs import rule_script
from foldatlas.settings import MmseqsSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    mmseqs_linclust(
        tool_binary("mmseqs", sm.params.binary),
        sm.input.sequences,
        sm.output.clusters,
        settings=MmseqsSettings.from_config(sm.params.mmseqs),
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
    )
