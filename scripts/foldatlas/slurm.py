"""Slurm site resources of jobs, from the ``slurm`` config section or the environment.

A setting left null in the config falls back to an environment variable
(``FOLDATLAS_PARTITION``, ...); a setting set nowhere is left out of the job's
resources entirely, so Slurm's own defaults apply (the executor plugin would otherwise
pass an empty ``-C ''`` or ``-p ''``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .settings import SlurmSettings

__all__ = ["ENV_VARS", "site_resources"]

#: config key -> environment variable consulted when the key is null
ENV_VARS = {
    "partition": "FOLDATLAS_PARTITION",
    "gpu_partition": "FOLDATLAS_GPU_PARTITION",
    "account": "FOLDATLAS_ACCOUNT",
    "gpu_model": "FOLDATLAS_GPU_MODEL",
    "constraint": "FOLDATLAS_CONSTRAINT",
}


def site_resources(slurm: SlurmSettings, *, gpu: bool, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Snakemake resources (``slurm_partition``, ``slurm_account``, ``gpu_model``,
    ``constraint``) for a CPU job or, with ``gpu``, a GPU job.

    GPU jobs use ``gpu_partition`` (falling back to ``partition``) and ``gpu_model``.
    """
    env = os.environ if environ is None else environ

    def get(key: str) -> str | None:
        value = getattr(slurm, key)
        if value in (None, ""):
            value = env.get(ENV_VARS[key]) or None
        return None if value is None else str(value)

    wanted = {
        "slurm_partition": (get("gpu_partition") or get("partition")) if gpu else get("partition"),
        "slurm_account": get("account"),
        "constraint": get("constraint"),
        "gpu_model": get("gpu_model") if gpu else None,
    }
    return {key: value for key, value in wanted.items() if value}
