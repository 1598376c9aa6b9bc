"""Generated sections of Markdown files (configuration reference, Parquet schemas)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replace_section"]


def replace_section(path: str | os.PathLike[str], begin: str, end: str, text: str) -> None:
    """Replace what stands between the marker lines ``begin`` and ``end`` in ``path`` by ``text``."""
    p = Path(path)
    head, rest = p.read_text().split(begin)
    p.write_text(head + begin + text + end + rest.split(end)[1])
