"""Rule mmseqs_cluster_segment: a round of the segmented sequence clustering (foldatlas.segments)."""

import shutil

from foldatlas.annotate import tool_binary
from foldatlas.logs import rule_script
from foldatlas.segments import cluster_segment
from foldatlas.settings import MmseqsSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    settings = MmseqsSettings.from_config(sm.params.mmseqs)
    cluster_segment(tool_binary("mmseqs", sm.params.binary), sm.input.remaining, sm.output.folder, sm.output.pairs, settings=settings,
                    threads=sm.threads, mem_mb=sm.resources.mem_mb, scratch=sm.params.scratch)  # fmt: skip
    shutil.rmtree(sm.params.scratch, ignore_errors=True)
