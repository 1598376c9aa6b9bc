"""Rule check_bucket: fail loudly unless every record of one checksum bucket of the
atlas is accounted for; write the bucket's counts for check_accounting and, read from
the same files, what the report shows of the bucket."""

from foldatlas.accounting import check_bucket
from foldatlas.atomic import write_json
from foldatlas.layout import Layout
from foldatlas.logs import rule_script
from foldatlas.report import bucket_figures

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    atlas = Layout.from_config(sm.params.output).atlas
    result = check_bucket(sm.wildcards.bucket, records=sm.input.records, sequences=sm.input.sequences, outputs=atlas)
    write_json(sm.output.report, {**result, "figures": bucket_figures(sm.wildcards.bucket, atlas)})
