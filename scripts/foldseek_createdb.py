"""Rule foldseek_createdb: one foldseek database per high-confidence shard of one checksum
bucket, read straight from the .tar (without copies, from a temporary shard copied out
of the store's fold archives); the databases of another bucket split are removed."""

from pathlib import Path

from foldatlas.annotate import bucket_db, indexed_bucket_db, remove_other_buckets, tool_binary
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    binary = tool_binary("foldseek", sm.params.binary)
    if sm.input.index:  # atlas.copy_structures: false
        indexed_bucket_db(binary, sm.input.index, sm.params.atlas, sm.output.db, threads=sm.threads, shard_size=sm.params.shard_size)
    else:
        bucket_db(binary, sm.input.structures, sm.output.db, threads=sm.threads)
    remove_other_buckets(Path(sm.output.db).parent, sm.params.buckets)
