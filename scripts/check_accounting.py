"""Rule check_accounting: add up the buckets' accounting and fail loudly unless every
input record is accounted for."""

import json
from pathlib import Path

from foldatlas.accounting import add_up_buckets
from foldatlas.layout import Layout
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    add_up_buckets(
        [json.loads(Path(p).read_text()) for p in sm.input.buckets],
        outputs=Layout.from_config(sm.params.output).atlas,
        report=sm.output.report,
        inputs=sm.input.inputs,
    )
