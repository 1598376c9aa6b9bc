"""Injected failures, for tests only: ``FOLDATLAS_INJECT_FAULTS`` (a JSON object).

Production code knows two calls and nothing more: :func:`kill_point` at the places where
a job may be killed, and :func:`before_forward` before each forward pass of the model.
Both do nothing unless the variable is set (it is unset in real runs).

Keys of the JSON object (all optional):

``kill_at`` and ``kill_after``
    The process SIGKILLs itself at the ``kill_after``-th time (default 1) it reaches the
    kill point named ``kill_at``. Fold jobs have ``model_load`` (while loading the
    model), ``segment_committed`` (after the writer committed a segment),
    ``archive_entry`` (after each entry written to the chunk archive),
    ``between_outputs`` (after the archive, before the tables) and ``before_seal``
    (after the three outputs, before their seal).
``oom_tokens``
    Out-of-memory when a batch has more than this many padded tokens.
``oom_min_length`` with ``oom_max_chunk_size``
    A sequence at least that long runs out of memory unless the trunk chunk size is at
    most ``oom_max_chunk_size`` (0: always).
``error_checksums``
    A ``ValueError`` for any batch holding one of these sequences.
``sleep_seconds``
    Sleep before each forward pass (so a test can kill a job mid-chunk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

from .errors import ConfigError

__all__ = ["ENV_VAR", "FaultPlan", "kill_point", "before_forward", "injected"]

log = logging.getLogger("foldatlas.faults")

ENV_VAR = "FOLDATLAS_INJECT_FAULTS"


@dataclass(frozen=True)
class FaultPlan:
    """What to inject (see the module docstring); the empty plan injects nothing."""

    kill_at: str | None = None
    kill_after: int = 1
    oom_tokens: int | None = None
    oom_min_length: int | None = None
    oom_max_chunk_size: int = 0
    error_checksums: frozenset[str] = frozenset()
    sleep_seconds: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        """The plan in ``FOLDATLAS_INJECT_FAULTS``; the empty plan when it is unset."""
        raw = (os.environ if environ is None else environ).get(ENV_VAR, "")
        if not raw:
            return cls()
        spec = json.loads(raw)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"{ENV_VAR}: unknown keys {unknown}; expected some of {sorted(known)}", key=ENV_VAR, value=raw)
        spec["error_checksums"] = frozenset(spec.get("error_checksums", ()))
        return cls(**spec)


_lock = threading.Lock()
_plan: FaultPlan | None = None
_hits: Counter[str] = Counter()


def _active() -> FaultPlan:
    global _plan
    if _plan is None:
        _plan = FaultPlan.from_env()
    return _plan


@contextlib.contextmanager
def injected(plan: FaultPlan | None = None, **kwargs: object) -> Iterator[FaultPlan]:
    """Inject ``plan`` (or ``FaultPlan(**kwargs)``) in this process for the ``with`` block."""
    global _plan
    previous = _plan
    _plan = plan if plan is not None else FaultPlan(**kwargs)  # type: ignore[arg-type]
    _hits.clear()
    try:
        yield _plan
    finally:
        _plan = previous
        _hits.clear()


def kill_point(name: str) -> None:
    """SIGKILL this process if ``name`` is the planned kill point and its hit is due."""
    plan = _active()
    if plan.kill_at != name:
        return
    with _lock:
        _hits[name] += 1
        due = _hits[name] == plan.kill_after
    if due:
        log.warning("injected fault: SIGKILL at %s (hit %d)", name, plan.kill_after)
        for handler in logging.getLogger("foldatlas").handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def before_forward(checksums: Sequence[str], lengths: Sequence[int], chunk_size: int | None) -> None:
    """Raise the planned failure for a batch of sequences, if any (see the module docstring)."""
    plan = _active()
    if plan == FaultPlan():
        return
    if plan.sleep_seconds:
        time.sleep(plan.sleep_seconds)
    lmax = max(lengths)
    if plan.oom_tokens is not None and len(lengths) * lmax > plan.oom_tokens:
        _raise_oom(f"injected: {len(lengths)} x {lmax} tokens > {plan.oom_tokens}")
    if plan.oom_min_length is not None and lmax >= plan.oom_min_length:
        if plan.oom_max_chunk_size == 0 or chunk_size is None or chunk_size > plan.oom_max_chunk_size:
            _raise_oom(f"injected: length {lmax} with chunk size {chunk_size}")
    for c in checksums:
        if c in plan.error_checksums:
            raise ValueError(f"injected error for {c}")


def _raise_oom(message: str) -> None:
    import torch  # only reached from the fold engine, where torch is loaded

    raise torch.OutOfMemoryError(message)
