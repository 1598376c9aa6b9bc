"""Rule assemble_atlas: filter the predictions of the run's sequences, read from the
store, and write the atlas tables and archives."""

import shutil

from foldatlas.atlas import assemble_atlas
from foldatlas.layout import Layout, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import AtlasSettings, FilterSettings, StructureSettings, fold_outputs_key
from foldatlas.store import atlas_sources

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    layout = Layout.from_config(sm.params.output)
    assemble_atlas(
        **atlas_sources(StoreLayout(sm.params.store, sm.params.fingerprint), sm.input.sequences, sm.input.release, scratch_dir=layout.scratch("release_chunks")),
        records=sm.input.records,
        sequences=sm.input.sequences,
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
    shutil.rmtree(layout.scratch("release_chunks"), ignore_errors=True)  # what it took from shared chunks
