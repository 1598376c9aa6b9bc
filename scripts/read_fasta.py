"""Rule read_fasta: validate every record of one FASTA file into a Parquet part."""

from foldatlas.ingest import read_fasta_file
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    read_fasta_file(
        snakemake.input.fasta,  # noqa: F821
        snakemake.output.part,  # noqa: F821
        source=snakemake.params.source,  # noqa: F821
        source_index=int(snakemake.wildcards.source),  # noqa: F821
        workers=snakemake.threads,  # noqa: F821
        **snakemake.params.ingest,  # noqa: F821
    )
