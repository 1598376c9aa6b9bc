"""Rule atlas_report: a self-contained HTML report of the atlas."""

from foldatlas.logs import rule_script
from foldatlas.report import write_report

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    write_report(
        metadata=snakemake.input.metadata,  # noqa: F821
        plddt=snakemake.input.plddt,  # noqa: F821
        structures=snakemake.input.structures,  # noqa: F821
        summary=snakemake.input.summary,  # noqa: F821
        config=snakemake.input.config,  # noqa: F821
        out=snakemake.output.html,  # noqa: F821
    )
