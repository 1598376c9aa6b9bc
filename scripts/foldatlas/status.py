"""Record and prediction statuses: one vocabulary for ingest, fold, atlas, accounting and the report.

==========================  ===========================================================
``ok``                      valid record (ingest); folded prediction (fold)
``duplicate``               identical to an earlier ok record (set by deduplication)
``empty``                   no residues after normalisation
``invalid_characters``      characters outside the amino-acid alphabet (named in reason)
``too_short``               shorter than ``ingest.min_length``
``too_long``                longer than ``ingest.max_length`` (1280 in the ESM Atlas)
``folded``                  metadata: the record's sequence has a prediction
``oom``                     did not fit in memory, even at trunk chunk size 32
``error``                   folding failed for this sequence (message recorded)
``represented``             metadata: not folded; its cluster's representative was
                            (``ingest.redundancy``); see ``representative`` and ``rep_*``
==========================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "Status",
    "INGEST_STATUSES",
    "REJECTED",
    "INVALID",
    "VALID",
    "PREDICTION_STATUSES",
    "FOLD_OUTCOMES",
    "METADATA_STATUSES",
    "sql_in",
    "listed",
]


class Status(StrEnum):
    """Every status a record or a prediction can have (compares equal to its text)."""

    OK = "ok"
    DUPLICATE = "duplicate"
    EMPTY = "empty"
    INVALID_CHARACTERS = "invalid_characters"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    FOLDED = "folded"
    OOM = "oom"
    ERROR = "error"
    REPRESENTED = "represented"


#: Statuses of ``records.parquet`` (ingest).
INGEST_STATUSES = (Status.OK, Status.DUPLICATE, Status.EMPTY, Status.INVALID_CHARACTERS, Status.TOO_SHORT, Status.TOO_LONG)
#: Records ingest sets aside (never folded).
REJECTED = (Status.EMPTY, Status.INVALID_CHARACTERS, Status.TOO_SHORT, Status.TOO_LONG)
#: Records that ``ingest.on_invalid: fail`` turns into an error.
INVALID = (Status.EMPTY, Status.INVALID_CHARACTERS)
#: Records whose sequence is folded (directly, or as a duplicate of an earlier record).
VALID = (Status.OK, Status.DUPLICATE)
#: Statuses of ``predictions.parquet`` (fold).
PREDICTION_STATUSES = (Status.OK, Status.OOM, Status.ERROR)
#: Fold outcomes as ``metadata.parquet`` names them.
FOLD_OUTCOMES = (Status.FOLDED, Status.OOM, Status.ERROR)
#: Statuses of ``metadata.parquet``.
METADATA_STATUSES = FOLD_OUTCOMES + (Status.REPRESENTED,) + REJECTED


def sql_in(statuses: Iterable[Status]) -> str:
    """``('a', 'b')``: a SQL list literal of statuses, for ``status IN ...``."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


def listed(statuses: Iterable[Status]) -> str:
    """``a, b or c``: statuses for documentation and messages."""
    names = [s.value for s in statuses]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
