"""Rule assemble_atlas: filter predictions and write the atlas tables and archives."""

from pathlib import Path

from foldatlas.atlas import AtlasOutputs, Thresholds, assemble_atlas
from foldatlas.fold import ChunkOutputs
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    out, atlas, flt = snakemake.output, snakemake.params.atlas, snakemake.params.filter  # noqa: F821
    chunks = [ChunkOutputs(p, Path(p).with_name("embeddings.parquet"), Path(p).with_name("structures.tar.gz")) for p in snakemake.input.predictions]  # noqa: F821
    assemble_atlas(
        records=snakemake.input.records,  # noqa: F821
        sequences=snakemake.input.sequences,  # noqa: F821
        chunks=chunks,
        outputs=AtlasOutputs(Path(out.metadata).parent, Path(out.metadata), Path(out.embeddings), Path(out.plddt), Path(out.structures), Path(out.summary)),
        thresholds=Thresholds(flt["min_plddt"], flt["min_ptm"], flt["exclude_artefacts"]),
        shard_size=atlas["shard_size"],
        all_structures=atlas["all_structures"],
        foldcomp=atlas["foldcomp"],
        memory_limit_gb=atlas["memory_gb"],
        threads=snakemake.threads,  # noqa: F821
    )
