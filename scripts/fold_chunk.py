"""Rule fold_chunk: fold one chunk with ESMFold (model loaded once), resumably."""

from pathlib import Path

from foldatlas.fold import fold_chunk_job
from foldatlas.layout import ChunkOutputs, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import EmbeddingSettings, FoldSettings, StructureSettings
from foldatlas.store import check_unpublished

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    out = sm.output
    check_unpublished(StoreLayout.of_chunk_outputs(out.predictions), sm.wildcards.chunk)
    fold_chunk_job(
        sm.input.chunk,
        ChunkOutputs(int(sm.wildcards.chunk), Path(out.predictions), Path(out.embeddings), Path(out.structures)),
        sm.params.partial,
        fold=FoldSettings.from_config(sm.config["fold"]),
        embeddings=EmbeddingSettings.from_config(sm.config["embeddings"]),
        structures=StructureSettings.from_config(sm.config["structures"]),
        threads=sm.threads,
        outputs_key=sm.params.outputs_key,
    )
