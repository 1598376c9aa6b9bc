"""Running external programs (foldseek, mmseqs2): argument lists, never a shell string.

:func:`run_tool` logs the exact command, its exit code and the tail of its stderr, and
raises :class:`ToolError` carrying all three when it fails. :func:`find_binary` fails at
start-up, with how to install the program, when it is missing.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence

from .errors import ConfigError, FoldatlasError

__all__ = ["ToolError", "run_tool", "find_binary"]

log = logging.getLogger("foldatlas.tools")

_TAIL = 4000


class ToolError(FoldatlasError, RuntimeError):
    """An external program failed.

    Attributes
    ----------
    command : list of str
    returncode : int
    stderr : str
        The last 4000 characters of its standard error (and output).
    """

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"command failed with exit code {returncode}: {shlex.join(command)}\n--- stderr (tail) ---\n{stderr[-_TAIL:]}")
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr[-_TAIL:]


def run_tool(command: Sequence[str | os.PathLike[str]], *, cwd: str | os.PathLike[str] | None = None, logger: logging.Logger | None = None) -> str:
    """Run ``command`` (an argument list), return its standard output; raise :class:`ToolError` on failure."""
    lg = logger or log
    args = [str(c) for c in command]
    lg.info("running: %s", shlex.join(args))
    started = time.monotonic()
    try:
        res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise ToolError(args, -1, f"{type(exc).__name__}: {exc}") from None
    lg.info("exit code %d after %.1f s: %s", res.returncode, time.monotonic() - started, args[0])
    if res.returncode != 0:
        tail = (res.stderr or "") + (res.stdout or "")[-1000:]
        lg.error("stderr tail of %s:\n%s", shlex.join(args), tail[-_TAIL:])
        raise ToolError(args, res.returncode, tail)
    return res.stdout


def find_binary(binary: str, *, key: str, install: str) -> str:
    """Resolve ``binary`` (a name on PATH or a path) or raise :class:`ConfigError` naming ``key``."""
    found = shutil.which(binary)
    if found is None:
        raise ConfigError(
            f"{key}: {binary!r} not found on PATH. {install} Or set {key} to its path, or switch the step off.",
            key=key,
            value=binary,
        )
    return found
