"""Rule read_fasta: validate every record of one FASTA file into a Parquet part."""

from foldatlas.ingest import read_fasta_file
from foldatlas.logs import rule_script
from foldatlas.settings import IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    read_fasta_file(
        sm.input.fasta,
        sm.output.part,
        source=sm.params.source,
        source_index=int(sm.wildcards.source),
        settings=IngestSettings.from_config(sm.params.ingest),
        workers=sm.threads,
        count_out=sm.output.counted,
    )
