"""DuckDB set-up in one place: connections with a memory limit and a spill folder, and
SQL literals for file paths."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["connect", "sql_path", "sql_paths"]


def connect(
    database: str | os.PathLike[str] | None = None,
    *,
    memory_gb: float | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    preserve_order: bool = True,
) -> Any:
    """A DuckDB connection (in memory when ``database`` is None).

    ``memory_gb`` caps DuckDB's memory (operators spill to ``spill_dir`` beyond it);
    ``preserve_order`` keeps the order of ``ORDER BY`` results when they are streamed or
    written to a file.
    """
    import duckdb

    con = duckdb.connect(":memory:" if database is None else str(database))
    if memory_gb is not None:
        con.execute(f"SET memory_limit='{float(memory_gb)}GB'")
    if spill_dir is not None:
        con.execute(f"SET temp_directory={sql_path(spill_dir)}")
    if threads is not None:
        con.execute(f"SET threads={int(threads)}")
    con.execute(f"SET preserve_insertion_order={'true' if preserve_order else 'false'}")
    return con


def sql_path(path: str | os.PathLike[str]) -> str:
    """A file path as a SQL string literal (quotes doubled)."""
    return "'" + str(Path(path)).replace("'", "''") + "'"


def sql_paths(paths: Iterable[str | os.PathLike[str]]) -> str:
    """File paths as a SQL list literal, for ``read_parquet([...])``."""
    return "[" + ", ".join(sql_path(p) for p in paths) + "]"
