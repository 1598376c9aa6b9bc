"""Rule foldseek_search: the atlas against the configured reference databases."""

from pathlib import Path

from foldatlas.annotate import HITS_SCHEMA, empty_outputs, foldseek_search
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    s = snakemake.params.search  # noqa: F821
    db = Path(snakemake.input.db) / "highconf"  # noqa: F821
    if not Path(f"{db}.dbtype").exists() or not s["targets"]:
        empty_outputs((snakemake.output.hits, HITS_SCHEMA))  # noqa: F821
    else:
        foldseek_search(
            snakemake.params.binary,  # noqa: F821
            db,
            s["targets"],
            snakemake.output.hits,  # noqa: F821
            evalue=s["evalue"],
            max_seqs=s["max_seqs"],
            threads=snakemake.threads,  # noqa: F821
        )
