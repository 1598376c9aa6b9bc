"""Rule foldseek_cluster: structural clusters of the high-confidence structures."""

from pathlib import Path

from foldatlas.annotate import CLUSTERS_SCHEMA, ClusterParams, empty_outputs, foldseek_cluster
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    cfg = snakemake.params.foldseek  # noqa: F821
    db = Path(snakemake.input.db) / "highconf"  # noqa: F821
    if not Path(f"{db}.dbtype").exists():  # no high-confidence structure
        empty_outputs((snakemake.output.clusters, CLUSTERS_SCHEMA))  # noqa: F821
    else:
        foldseek_cluster(
            snakemake.params.binary,  # noqa: F821
            db,
            snakemake.output.clusters,  # noqa: F821
            metadata=snakemake.input.metadata,  # noqa: F821
            params=ClusterParams(**cfg["cluster"]),
            threads=snakemake.threads,  # noqa: F821
            best_confidence=cfg["representative"] == "best_confidence",
        )
