"""Rule mmseqs_cluster: sequence clusters of the unique sequences (one mmseqs linclust, or
the merge of a segmented clustering's rounds and assignments: foldatlas.segments)."""

import shutil
from pathlib import Path

from foldatlas.annotate import mmseqs_linclust, tool_binary
from foldatlas.logs import rule_script
from foldatlas.segments import merge_segments
from foldatlas.settings import MmseqsSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    settings = MmseqsSettings.from_config(sm.params.mmseqs)
    if settings.segments > 1:
        scratch = Path(sm.input.pairs[0]).parent / "merge"  # emptied at the start, removed at the end
        merge_segments(sm.input.sequences, sm.input.pairs, sm.output.clusters, threads=sm.threads, mem_mb=sm.resources.mem_mb, scratch=scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        mmseqs_linclust(tool_binary("mmseqs", sm.params.binary), sm.input.sequences, sm.output.clusters, settings=settings,
                        threads=sm.threads, mem_mb=sm.resources.mem_mb)  # fmt: skip
