"""Rule fold_chunk: fold one chunk with ESMFold (model loaded once), resumably."""

from foldatlas.fold import ChunkOutputs, fold_chunk_job
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    out = snakemake.output  # noqa: F821
    fold_chunk_job(
        snakemake.input.chunk,  # noqa: F821
        ChunkOutputs(out.predictions, out.embeddings, out.structures),
        snakemake.params.partial,  # noqa: F821
        fold=snakemake.params.fold,  # noqa: F821
        embeddings=snakemake.params.embeddings,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
