"""Rule read_fasta: validate every record of one FASTA file into a Parquet part (with
ingest.bucket_digits, a folder of one part per checksum bucket)."""

from foldatlas.ingest import read_fasta_file
from foldatlas.logs import rule_script
from foldatlas.settings import IngestSettings

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    settings = IngestSettings.from_config(sm.params.ingest)
    read_fasta_file(
        sm.input.fasta,
        sm.output.part,
        source=sm.params.source,
        source_index=int(sm.wildcards.source),
        settings=settings,
        workers=sm.threads,
        count_out=sm.output.counted,
        digits=settings.bucket_digits,
    )
