"""Rule fold_package: fold several chunks in turn with the model loaded once, resumably."""

from foldatlas.atomic import write_json
from foldatlas.fold import fold_package_job
from foldatlas.layout import StoreLayout
from foldatlas.logs import rule_script
from foldatlas.settings import EmbeddingSettings, FoldSettings, StructureSettings
from foldatlas.store import check_unpublished

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    sm = snakemake  # noqa: F821
    store = StoreLayout(sm.params.store, sm.params.fingerprint)
    for chunk in sm.params.chunks:
        check_unpublished(store, chunk)
    counts = fold_package_job(
        [(path, store.chunk_outputs(chunk), partial) for chunk, path, partial in zip(sm.params.chunks, sm.params.files, sm.params.partial)],
        fold=FoldSettings.from_config(sm.config["fold"]),
        embeddings=EmbeddingSettings.from_config(sm.config["embeddings"]),
        structures=StructureSettings.from_config(sm.config["structures"]),
        threads=sm.threads,
        outputs_key=sm.params.outputs_key,
    )
    # what publish_bucket compares with the package as planned now (common.smk, receipt_holds)
    receipt = {"package": sm.wildcards.package, "chunks": dict(zip(sm.params.chunks, counts)), "store": sm.params.store, "fingerprint": sm.params.fingerprint}
    write_json(sm.output.receipt, receipt)
