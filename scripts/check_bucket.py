"""Rule check_bucket: fail loudly unless every record of one checksum bucket of the
atlas is accounted for; write the bucket's counts for check_accounting."""

from foldatlas.accounting import check_bucket
from foldatlas.layout import Layout
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    check_bucket(
        sm.wildcards.bucket,
        records=sm.input.records,
        sequences=sm.input.sequences,
        outputs=Layout.from_config(sm.params.output).atlas,
        report=sm.output.report,
    )
