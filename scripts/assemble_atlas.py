"""Rule assemble_atlas: finish the atlas whose buckets are written (summary, config)."""

import json

from foldatlas.atlas import finish_atlas
from foldatlas.layout import Layout, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import FilterSettings
from foldatlas.store import release_history

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    parts = {json.loads(open(p).read())["bucket"]: p for p in sm.input.parts}
    finish_atlas(
        Layout.from_config(sm.params.output).atlas, parts=parts, records=sm.input.records, sequences=sm.input.sequences, inputs=sm.input.inputs,
        filter=FilterSettings.from_config(sm.params.filter), config=sm.params.config,
        releases=release_history(StoreLayout(sm.params.store, sm.params.fingerprint)), release=json.loads(open(sm.input.release).read())["release"],
        bins=sm.params.config["atlas"]["bins"],
    )  # fmt: skip
