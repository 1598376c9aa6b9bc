"""Rule assemble_atlas: filter predictions and write the atlas tables and archives."""

from foldatlas.atlas import assemble_atlas
from foldatlas.layout import Layout
from foldatlas.logs import rule_script
from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings, fold_outputs_key

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    assemble_atlas(
        records=sm.input.records,
        sequences=sm.input.sequences,
        chunks=[layout.chunk_outputs(c) for c in sm.params.chunks],
        outputs=layout.atlas,
        filter=FilterSettings.from_config(sm.params.filter),
        atlas=AtlasSettings.from_config(sm.params.atlas),
        structures=StructureSettings.from_config(sm.params.config["structures"]),
        config=sm.params.config,
        threads=sm.threads,
        scratch_dir=layout.scratch("assemble_atlas"),
        inputs=sm.input.inputs,
        outputs_key=fold_outputs_key(sm.params.config),
    )
