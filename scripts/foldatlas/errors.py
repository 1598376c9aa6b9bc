"""Exceptions raised by foldatlas, each carrying the offending value as an attribute.

Two families, printed differently by :func:`foldatlas.logs.rule_script`:

- :class:`FoldatlasError` and its subclasses are problems a user can fix (a bad setting,
  a bad input file, missing weights, outputs of another version). They are printed as
  one clear line, without a traceback.
- :class:`InternalError` is a broken invariant: a bug in foldatlas. It is never caught
  on purpose and always printed with its traceback.
"""

from __future__ import annotations

__all__ = [
    "FoldatlasError",
    "ConfigError",
    "InputFileError",
    "InvalidRecordError",
    "StaleOutputError",
    "AccountingError",
    "InternalError",
]


class FoldatlasError(Exception):
    """Base class of every error a user can fix; printed as one line."""


class ConfigError(FoldatlasError, ValueError):
    """A configuration value is missing, unknown or out of range.

    Attributes
    ----------
    key : str
        Dotted path of the configuration key (``filter.min_plddt``).
    value : object
        The value found.
    """

    def __init__(self, message: str, *, key: str, value: object = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class InputFileError(FoldatlasError, ValueError):
    """An input file is missing, unreadable or not FASTA.

    Attributes
    ----------
    path : str
        The file as named in the configuration.
    line : int or None
        1-based line number (in the decompressed text) where the problem was found.
    """

    def __init__(self, path: str, message: str, *, line: int | None = None) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self._message = message

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (InputFileError, (self.path, self._message), {"line": self.line, "args": self.args})

    def __setstate__(self, state):  # type: ignore[no-untyped-def]
        self.line = state["line"]
        self.args = state["args"]


class InvalidRecordError(InputFileError):
    """A record failed validation while ``ingest.on_invalid`` is ``fail``.

    Attributes
    ----------
    record_id : str
        First token of the record's header.
    reason : str
        Why the record is invalid.
    """

    def __init__(self, path: str, line: int, record_id: str, reason: str) -> None:
        super().__init__(
            path,
            f"invalid record {record_id!r}: {reason} "
            "(set ingest.on_invalid: skip to record such records and go on)",
            line=line,
        )
        self.record_id = record_id
        self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (InvalidRecordError, (self.path, self.line, self.record_id, self.reason))


class StaleOutputError(FoldatlasError, ValueError):
    """An output on disk cannot be used as it is (written by another version, or it
    disagrees with the table that describes it); the message says what to rerun.

    Attributes
    ----------
    path : str
        The file found wanting.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class AccountingError(FoldatlasError, RuntimeError):
    """Some record or structure is missing, duplicated or miscounted (the outputs disagree
    with each other or with the independent count of the input files).

    Attributes
    ----------
    problems : list of str
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("accounting failed:\n  " + "\n  ".join(problems))
        self.problems = problems

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (AccountingError, (self.problems,))


class InternalError(RuntimeError):
    """A broken invariant: a bug in foldatlas, never the user's fault.

    Deliberately not a :class:`FoldatlasError`: it is always shown with its traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error (a bug in foldatlas, please report it): {message}")
