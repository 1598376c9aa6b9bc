"""Rule publish_release: publish the release once every bucket of it is staged."""

from foldatlas.layout import RELEASE_FILE, StoreLayout
from foldatlas.logs import rule_script
from foldatlas.store import finish_release

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    finish_release(
        StoreLayout(sm.params.store, sm.params.fingerprint),
        planned=f"{sm.input.chunks}/{RELEASE_FILE}",
        parts=sm.input.parts,
        sequences=sm.input.sequences,
        inputs=sm.input.inputs,
        receipt=sm.output.receipt,
    )
