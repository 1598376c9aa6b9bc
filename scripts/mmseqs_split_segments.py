"""Rule mmseqs_split_segments: the unique sequences in segments by length (foldatlas.segments)."""

from foldatlas.logs import rule_script
from foldatlas.segments import split_segments

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    # the cap from the configuration, not a param: another cap reruns no job of the clustering
    split_segments(sm.input.sequences, sm.params.split, segments=sm.params.segments, max_mem_mb=sm.config["mmseqs"]["max_mem_mb"])
