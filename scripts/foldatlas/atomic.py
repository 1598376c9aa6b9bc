"""Atomic writes of files and folders: a killed job never leaves one that looks finished.

A write goes to a hidden sibling of the final path (``.<name>.tmp-<pid>``; a replaced
folder is first moved aside to ``.<name>.old-<pid>``) and is renamed into place at the
end. A job killed mid-write (SIGKILL, node failure) leaves those siblings behind; the
next write of the same final path removes them first (:func:`remove_stale`), so a rerun
of the step cleans up after the killed one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InternalError

__all__ = ["atomic_path", "atomic_dir", "staging_name", "staged_for", "remove_stale", "write_json", "json_text"]


def staging_name(final: Path) -> Path:
    """The hidden temporary sibling of ``final``: ``.<name>.tmp-<pid>``.

    It lives in the same folder (so the rename is atomic on POSIX file systems), and no
    glob for the final name matches it.
    """
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def staged_for(name: str) -> str | None:
    """The final name that a write's hidden sibling stands for (``.<name>.tmp-<pid>`` or
    ``.<name>.old-<pid>`` -> ``<name>``), or None for any other name."""
    m = re.fullmatch(r"\.(.+)\.(tmp|old)-[^/]*", name)
    return m[1] if m else None


def _old_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.old-{os.getpid()}")


def remove_stale(final: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed writes of ``final`` left behind: its ``.<name>.tmp-*`` and
    ``.<name>.old-*`` siblings (files or folders), except this process's own. Returns
    what was removed.

    Only one job writes a given output at a time (Snakemake's lock and DAG see to it),
    so any other such sibling belongs to a writer that is gone.
    """
    final = Path(final)
    mine = {staging_name(final).name, _old_name(final).name}
    prefixes = (f".{final.name}.tmp-", f".{final.name}.old-")
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(prefixes) and entry.name not in mine:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Stale temporary siblings of killed writes are removed first (:func:`remove_stale`).
    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = staging_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write of {final} produced no file at {tmp}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh, empty staging folder beside ``path``; swap it in on success.

    Stale staging and old folders of killed writes are removed first
    (:func:`remove_stale`). An existing ``path`` is renamed aside (``.<name>.old-<pid>``),
    the staging folder renamed onto ``path``, then the old one removed, so a reader sees
    the old folder or the new one, whole. On any exception the staging folder is removed
    and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    staging = staging_name(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        old = _old_name(final)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def json_text(data: Any) -> str:
    """``data`` as indented JSON text; a NaN or infinity anywhere is an :class:`InternalError`
    naming its key (JSON has no such numbers: ``json.dumps`` would write a bare ``NaN``)."""
    bad = _non_finite(data, "")
    if bad is not None:
        raise InternalError(f"refusing to write {bad[1]!r} at {bad[0] or '<top level>'} into JSON: expected a finite number")
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _non_finite(item, key)
        if found is not None:
            return found
    return None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON, atomically, refusing NaN and infinity (see :func:`json_text`)."""
    text = json_text(data)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
