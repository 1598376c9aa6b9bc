"""Slurm site resources of jobs, from the ``slurm`` config section or the environment.

A setting left null in the config falls back to an environment variable
(``FOLDATLAS_PARTITION``, ...); a setting set nowhere is left out of the job's
resources entirely, so Slurm's own defaults apply (the executor plugin would otherwise
pass an empty ``-C ''`` or ``-p ''``).

Runtime requests grow with the attempt and stop at ``slurm.max_runtime``
(:func:`runtime_request`): a partition refuses a job that asks for more than its time
limit, so an uncapped third attempt would never start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .errors import InternalError
from .settings import SlurmSettings

__all__ = ["ENV_VARS", "runtime_request", "site_resources"]

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


def runtime_request(minutes: float, attempt: int, max_runtime: int | None) -> int:
    """Minutes of runtime attempt ``attempt`` (1, 2, ...) of a job asks for: ``minutes``
    x ``attempt``, rounded up, and at most ``max_runtime`` (``slurm.max_runtime``;
    None: no cap).

    Raises
    ------
    InternalError
        For a request that is not positive or an attempt below 1 (a rule's bug).
    """
    if not minutes > 0 or attempt < 1:
        raise InternalError(f"expected a positive runtime and an attempt >= 1, found {minutes!r} minutes, attempt {attempt!r}")
    wanted = math.ceil(minutes * attempt)
    return wanted if max_runtime is None else min(wanted, max_runtime)
