"""Rule plan_chunks: deduplicate all records and cut unique sequences into chunks."""

from foldatlas.chunking import CostModel, plan_chunks
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    plan = dict(snakemake.params.plan)  # noqa: F821
    plan_chunks(
        snakemake.input.parts,  # noqa: F821
        records_out=snakemake.output.records,  # noqa: F821
        sequences_out=snakemake.output.sequences,  # noqa: F821
        chunks_dir=snakemake.output.chunks,  # noqa: F821
        cost_model=CostModel(**plan.pop("cost")),
        threads=snakemake.threads,  # noqa: F821
        **plan,
    )
