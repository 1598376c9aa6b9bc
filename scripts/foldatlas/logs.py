"""Logging set-up shared by every rule script."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from .errors import FoldatlasError

__all__ = ["setup_logging", "rule_script"]


def setup_logging(log_path: str | None, *, level: int = logging.INFO) -> logging.Logger:
    """Send the ``foldatlas`` logger to ``log_path`` (appending) and to stderr.

    Call it first thing in a rule script, so that a failure leaves a readable trail in
    the rule's ``log:`` file. Uncaught exceptions are logged with their traceback.
    """
    logger = logging.getLogger("foldatlas")
    logger.setLevel(level)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="a"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)

    def _hook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        logger.error("failed: %s", exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = _hook
    return logger


@contextlib.contextmanager
def rule_script(log_path: str | None) -> Iterator[logging.Logger]:
    """Run a rule script's body: log to ``log_path``, turn foldatlas errors into one clear line.

    A :class:`~foldatlas.errors.FoldatlasError` (bad input, bad configuration) is logged
    and printed as its message alone, and the process exits with status 1; anything else
    is a bug and keeps its traceback.
    """
    logger = setup_logging(log_path)
    try:
        yield logger
    except FoldatlasError as exc:
        logger.error("%s", exc)
        print(f"foldatlas: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
