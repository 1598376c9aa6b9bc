"""Rule check_accounting: fail loudly unless every input record is accounted for."""

from foldatlas.accounting import check_accounting
from foldatlas.layout import Layout
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    check_accounting(
        records=sm.input.records,
        sequences=sm.input.sequences,
        outputs=layout.atlas,
        report=sm.output.report,
        inputs=sm.input.inputs,
    )
