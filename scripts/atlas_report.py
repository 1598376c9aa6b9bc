"""Rule atlas_report: a self-contained HTML report of the atlas, from its buckets' figures."""

import json
from pathlib import Path

from foldatlas.layout import Layout
from foldatlas.logs import rule_script
from foldatlas.report import write_report

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    # an accounting made before the figures were part of it has none: write_report says so
    figures = [json.loads(Path(p).read_text()).get("figures", {}) for p in sm.input.buckets]
    atlas = Layout.from_config(sm.params.output).atlas
    write_report(metadata=atlas.metadata, summary=sm.input.summary, config=sm.input.config, out=sm.output.html, figures=figures)
