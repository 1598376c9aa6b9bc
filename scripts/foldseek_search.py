"""Rule foldseek_search: one checksum bucket of the atlas against the configured reference
databases; the hits files of another bucket split are removed."""

import shutil
from pathlib import Path

from foldatlas.annotate import foldseek_search, remove_other_buckets, tool_binary
from foldatlas.logs import rule_script
from foldatlas.settings import FoldseekSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    foldseek_search(
        tool_binary("foldseek", sm.params.binary),
        sm.input.db,
        sm.output.hits,
        search=FoldseekSettings.from_config({"search": sm.params.search}).search,
        threads=sm.threads,
        mem_mb=sm.resources.mem_mb,
        target_dbs=sm.params.target_dbs,
        scratch_dir=sm.params.scratch,
    )
    shutil.rmtree(sm.params.scratch, ignore_errors=True)
    remove_other_buckets(Path(sm.output.hits).parent, sm.params.buckets, suffix=".parquet")
