"""Rule foldseek_createdb: a foldseek database straight from the high-confidence shards."""

from pathlib import Path

from foldatlas.annotate import foldseek_createdb, shard_list
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    out = Path(snakemake.output.db)  # noqa: F821
    out.mkdir(parents=True, exist_ok=True)
    shards = shard_list(snakemake.input.structures)  # noqa: F821
    if shards:
        foldseek_createdb(snakemake.params.binary, shards, out / "highconf", threads=snakemake.threads)  # noqa: F821
