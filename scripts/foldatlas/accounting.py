"""The invariant that matters most: every input record is accounted for, exactly once.

:func:`check_accounting` re-reads the written tables (never trusting what the writer
meant to write) and raises :class:`AccountingError` listing every violation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .archive import read_member
from .atlas import AtlasOutputs
from .atomic import atomic_path
from .errors import FoldatlasError

__all__ = ["AccountingError", "check_accounting"]

log = logging.getLogger("foldatlas.accounting")


class AccountingError(FoldatlasError, RuntimeError):
    """Some record or structure is missing, duplicated or miscounted.

    Attributes
    ----------
    problems : list of str
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("accounting failed:\n  " + "\n  ".join(problems))
        self.problems = problems


def _p(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def check_accounting(*, records: str | Path, sequences: str | Path, outputs: AtlasOutputs, report: str | Path, sample_reads: int = 50) -> dict:
    """Check the atlas against the ingest tables; write ``report`` (JSON) when all hold.

    Checks: metadata has exactly the records of ``records.parquet`` (same keys, each
    once) with a status; every ok/duplicate record has a fold outcome; every unique
    sequence appears once among folded/oom/error first occurrences; every high-confidence
    sequence has exactly one entry in the index and its shard exists (a sample of them
    is read back through the index); ``summary.json`` agrees with the tables.
    """
    import duckdb

    con = duckdb.connect()
    one = lambda sql: con.execute(sql).fetchone()  # noqa: E731
    meta, rec, seq = _p(outputs.metadata), _p(records), _p(sequences)
    index = outputs.structures / "index.parquet"
    problems: list[str] = []
    checks: dict[str, int] = {}

    n_rec, n_meta = one(f"SELECT count(*) FROM read_parquet({rec})")[0], one(f"SELECT count(*) FROM read_parquet({meta})")[0]
    checks["records"] = n_rec
    if n_rec != n_meta:
        problems.append(f"records.parquet has {n_rec} records, metadata.parquet {n_meta}")
    dup_keys = one(f"SELECT count(*) FROM (SELECT source_index, record_index FROM read_parquet({meta}) GROUP BY ALL HAVING count(*) > 1)")[0]
    if dup_keys:
        problems.append(f"{dup_keys} records appear more than once in metadata.parquet")
    missing = one(
        f"""SELECT count(*) FROM read_parquet({rec}) r ANTI JOIN read_parquet({meta}) m
            ON r.source_index = m.source_index AND r.record_index = m.record_index"""
    )[0]
    if missing:
        problems.append(f"{missing} input records are missing from metadata.parquet")
    no_status = one(f"SELECT count(*) FROM read_parquet({meta}) WHERE status IS NULL OR status NOT IN ('folded','oom','error','empty','invalid_characters','too_short','too_long')")[0]
    if no_status:
        problems.append(f"{no_status} metadata rows have no valid status (a folded record lost its prediction?)")
    n_seq = one(f"SELECT count(*) FROM read_parquet({seq})")[0]
    checks["unique_sequences"] = n_seq
    firsts = one(f"SELECT count(*), count(DISTINCT checksum) FROM read_parquet({meta}) WHERE status IN ('folded','oom','error') AND NOT is_duplicate")
    if firsts[0] != n_seq or firsts[1] != n_seq:
        problems.append(f"{n_seq} unique sequences but {firsts[0]} first occurrences with a fold outcome ({firsts[1]} distinct)")
    hc = one(f"SELECT count(DISTINCT checksum) FROM read_parquet({meta}) WHERE high_confidence")[0]
    checks["high_confidence"] = hc
    idx = one(f"SELECT count(*), count(DISTINCT checksum) FROM read_parquet({_p(index)}) WHERE collection = 'highconf'")
    if idx[0] != hc or idx[1] != hc:
        problems.append(f"{hc} high-confidence sequences but {idx[0]} high-confidence index entries ({idx[1]} distinct)")
    unindexed = one(
        f"""SELECT count(*) FROM (SELECT DISTINCT checksum FROM read_parquet({meta}) WHERE high_confidence) m
            ANTI JOIN (SELECT * FROM read_parquet({_p(index)}) WHERE collection = 'highconf') i
            ON i.checksum = m.checksum"""
    )[0]
    if unindexed:
        problems.append(f"{unindexed} high-confidence sequences have no structure in the archives")
    rows = con.execute(f"SELECT DISTINCT archive FROM read_parquet({_p(index)})").fetchall()
    for (archive,) in rows:
        if not (outputs.root / archive).is_file():
            problems.append(f"index names {archive}, which does not exist")
    for checksum, archive, member, offset, length, size in con.execute(
        f"SELECT checksum, archive, member, \"offset\", length, size FROM read_parquet({_p(index)}) USING SAMPLE {int(sample_reads)} ROWS"
    ).fetchall():
        try:
            data = read_member(outputs.root / archive, offset, length, expect=member)
            if len(data) != size or not data.startswith(b"REMARK"):
                problems.append(f"{archive}:{member}: expected {size} bytes of PDB, found {len(data)}")
        except (OSError, ValueError) as exc:
            problems.append(f"{archive}:{member}: {exc}")
    summary = json.loads(Path(outputs.summary).read_text())["counts"]
    status = dict(con.execute(f"SELECT status, count(*) FROM read_parquet({rec}) GROUP BY status").fetchall())
    expected = {
        "records_in": n_rec,
        "unique_sequences": n_seq,
        "high_confidence": hc,
        "archived_high_confidence": idx[0],
        "duplicates": status.get("duplicate", 0),
        "records_ok": status.get("ok", 0),
        "too_long": status.get("too_long", 0),
    }
    for key, value in expected.items():
        if summary.get(key) != value:
            problems.append(f"summary.json counts {key}={summary.get(key)}, the tables say {value}")
    parts = sum(summary[k] for k in ("records_ok", "duplicates", "empty", "invalid_characters", "too_short", "too_long"))
    if parts != summary["records_in"]:
        problems.append(f"summary.json: statuses add up to {parts}, not records_in={summary['records_in']}")
    con.close()
    if problems:
        raise AccountingError(problems)
    result = {"ok": True, "checks": checks}
    with atomic_path(report) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    log.info("accounting holds: %s", checks)
    return result
