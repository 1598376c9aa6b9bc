"""The invariant that matters most: every input record is accounted for, exactly once.

:func:`check_accounting` re-reads the written tables (never trusting what the writer
meant to write) and raises :class:`AccountingError` listing every violation. The
records are compared with the independent count of each input file
(:mod:`foldatlas.inputs`, made from the decompressed text as it was read, by code that
shares nothing with the record parser), so records that ingest lost, or tables from a
stale or partial read, cannot pass.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from . import duck
from .archive import read_member
from .atomic import write_json
from .errors import AccountingError
from .inputs import InputCount, check_parts, inputs_summary, read_inputs
from .layout import HIGHCONF, AtlasOutputs
from .status import FOLD_OUTCOMES, METADATA_STATUSES, REJECTED, Status, sql_in

__all__ = ["AccountingError", "check_accounting"]

log = logging.getLogger("foldatlas.accounting")


class _Checker:
    """One DuckDB connection over the tables, collecting problems and checked counts."""

    def __init__(self, records: str | Path, sequences: str | Path, outputs: AtlasOutputs) -> None:
        self.con = duck.connect()
        self.rec = f"read_parquet({duck.sql_path(records)})"
        self.seq = f"read_parquet({duck.sql_path(sequences)})"
        self.meta = f"read_parquet({duck.sql_path(outputs.metadata)})"
        self.index = f"read_parquet({duck.sql_path(outputs.index)})"
        self.outputs = outputs
        self.problems: list[str] = []
        self.checks: dict[str, int] = {}

    def one(self, sql: str) -> Any:
        return self.con.execute(sql).fetchall()[0]

    def records(self) -> None:
        """metadata.parquet holds exactly the records of records.parquet, each once, with a status."""
        n_rec, n_meta = self.one(f"SELECT count(*) FROM {self.rec}")[0], self.one(f"SELECT count(*) FROM {self.meta}")[0]
        self.checks["records"] = n_rec
        if n_rec != n_meta:
            self.problems.append(f"records.parquet has {n_rec} records, metadata.parquet {n_meta}")
        dup_keys = self.one(f"SELECT count(*) FROM (SELECT source_index, record_index FROM {self.meta} GROUP BY ALL HAVING count(*) > 1)")[0]
        if dup_keys:
            self.problems.append(f"{dup_keys} records appear more than once in metadata.parquet")
        missing = self.one(
            f"""SELECT count(*) FROM {self.rec} r ANTI JOIN {self.meta} m
                ON r.source_index = m.source_index AND r.record_index = m.record_index"""
        )[0]
        if missing:
            self.problems.append(f"{missing} input records are missing from metadata.parquet")
        no_status = self.one(f"SELECT count(*) FROM {self.meta} WHERE status IS NULL OR status NOT IN {sql_in(METADATA_STATUSES)}")[0]
        if no_status:
            self.problems.append(f"{no_status} metadata rows have no valid status (a folded record lost its prediction?)")
        outcomes = self.one(f"SELECT count(*) FROM {self.meta} WHERE status IN {sql_in(METADATA_STATUSES)}")[0]
        if outcomes != n_rec:
            self.problems.append(f"folded, oom, error, represented and rejected records add up to {outcomes}, not the {n_rec} records")

    def sequences(self) -> None:
        """Every unique sequence has exactly one first occurrence with a fold outcome."""
        n_seq = self.one(f"SELECT count(*) FROM {self.seq}")[0]
        self.checks["unique_sequences"] = n_seq
        firsts = self.one(f"SELECT count(*), count(DISTINCT checksum) FROM {self.meta} WHERE status IN {sql_in((*FOLD_OUTCOMES, Status.REPRESENTED))} AND NOT is_duplicate")
        if firsts[0] != n_seq or firsts[1] != n_seq:
            self.problems.append(f"{n_seq} unique sequences but {firsts[0]} first occurrences with a fold outcome or a representative ({firsts[1]} distinct)")
        self.members()

    def members(self) -> None:
        """Every represented record names a representative with a fold outcome, and it is
        resolved exactly as ``sequences.parquet`` (the plan) says; no member is counted
        as a high-confidence structure of its own."""
        n, planned = self.one(
            f"""SELECT count(*) FILTER (WHERE status = '{Status.REPRESENTED}'),
                       (SELECT coalesce(sum(n_records), 0) FROM {self.seq} WHERE representative IS NOT NULL) FROM {self.meta}"""
        )
        self.checks["represented_records"] = n
        if n != planned:
            self.problems.append(f"sequences.parquet resolves {planned} records to a representative, metadata.parquet marks {n} represented")
        bad = self.one(
            f"""SELECT count(*) FROM {self.meta} m LEFT JOIN {self.seq} s ON s.checksum = m.checksum
                WHERE m.status = '{Status.REPRESENTED}' AND (m.representative IS DISTINCT FROM s.representative OR m.identity IS NULL OR m.coverage IS NULL
                      OR m.rep_status IS NULL OR m.rep_status NOT IN {sql_in(FOLD_OUTCOMES)} OR m.high_confidence OR m.plddt IS NOT NULL)"""
        )[0]
        if bad:
            self.problems.append(f"{bad} represented records lack their planned representative's fold outcome, or carry confidences of their own")

    def structures(self, sample_reads: int) -> None:
        """Every high-confidence sequence has one index entry in an existing shard; a sample is read back."""
        # the structures the atlas's records point at: their own, and their representatives'
        hc = self.one(
            f"""SELECT count(*) FROM (SELECT checksum FROM {self.meta} WHERE high_confidence
                UNION SELECT representative FROM {self.meta} WHERE rep_high_confidence)"""
        )[0]
        self.checks["high_confidence"] = hc
        idx = self.one(f"SELECT count(*), count(DISTINCT checksum) FROM {self.index} WHERE collection = '{HIGHCONF}'")
        self.checks["archived_high_confidence"] = idx[0]
        if idx[0] != hc or idx[1] != hc:
            self.problems.append(f"{hc} high-confidence sequences but {idx[0]} high-confidence index entries ({idx[1]} distinct)")
        unindexed = self.one(
            f"""SELECT count(*) FROM (SELECT checksum FROM {self.meta} WHERE high_confidence
                                     UNION SELECT representative FROM {self.meta} WHERE rep_high_confidence) m
                ANTI JOIN (SELECT * FROM {self.index} WHERE collection = '{HIGHCONF}') i ON i.checksum = m.checksum"""
        )[0]
        if unindexed:
            self.problems.append(f"{unindexed} high-confidence sequences have no structure in the archives")
        for (archive,) in self.con.execute(f"SELECT DISTINCT archive FROM {self.index}").fetchall():
            if not (self.outputs.root / archive).is_file():
                self.problems.append(f"index names {archive}, which does not exist")
        sample = f'SELECT archive, member, data_offset, data_length, pdb_size FROM {self.index} USING SAMPLE {int(sample_reads)} ROWS'
        for archive, member, offset, length, size in self.con.execute(sample).fetchall():
            try:
                data = read_member(self.outputs.root / archive, offset, length, expect=member)
                if len(data) != size or not data.startswith(b"REMARK"):
                    self.problems.append(f"{archive}:{member}: expected {size} bytes of PDB, found {len(data)}")
            except (OSError, ValueError) as exc:
                self.problems.append(f"{archive}:{member}: {exc}")

    def inputs(self, counts: list[InputCount]) -> None:
        """records.parquet and metadata.parquet hold, file by file, the records the
        independent count of each input file found."""
        self.checks["input_files"] = len(counts)
        for table, what in ((self.rec, "records.parquet"), (self.meta, "metadata.parquet")):
            rows = dict(self.con.execute(f"SELECT source_index, count(*) FROM {table} GROUP BY source_index").fetchall())
            try:
                check_parts(counts, rows, what)
            except AccountingError as exc:
                self.problems.extend(exc.problems)
        names = dict(self.con.execute(f"SELECT DISTINCT source_index, source FROM {self.rec}").fetchall())
        for c in counts:
            if c.source_index in names and names[c.source_index] != c.source:
                self.problems.append(f"records.parquet names source_index {c.source_index} {names[c.source_index]!r}, the input count {c.source!r}")

    def summary(self) -> None:
        """summary.json agrees with the tables, and its statuses add up."""
        summary = json.loads(Path(self.outputs.summary).read_text())["counts"]
        status = dict(self.con.execute(f"SELECT status, count(*) FROM {self.rec} GROUP BY status").fetchall())
        expected = {
            "records_in": self.checks["records"],
            "unique_sequences": self.checks["unique_sequences"],
            "high_confidence": self.checks["high_confidence"],
            "archived_high_confidence": self.checks["archived_high_confidence"],
            "duplicates": status.get(Status.DUPLICATE, 0),
            "records_ok": status.get(Status.OK, 0),
            "too_long": status.get(Status.TOO_LONG, 0),
            "represented_records": self.checks["represented_records"],
        }
        for key, value in expected.items():
            if summary.get(key) != value:
                self.problems.append(f"summary.json counts {key}={summary.get(key)}, the tables say {value}")
        parts = summary["records_ok"] + summary["duplicates"] + sum(summary[str(s)] for s in REJECTED)
        if parts != summary["records_in"]:
            self.problems.append(f"summary.json: statuses add up to {parts}, not records_in={summary['records_in']}")

    def summary_inputs(self, inputs: str | Path) -> None:
        """summary.json's per-file records are those of inputs.json."""
        summary = json.loads(Path(self.outputs.summary).read_text())
        if "inputs" not in summary:
            self.problems.append(f"summary.json has no per-file inputs (expected those of {inputs})")
        elif summary["inputs"] != inputs_summary(inputs):
            self.problems.append(f"summary.json's inputs differ from {inputs}")


def check_accounting(
    *,
    records: str | Path,
    sequences: str | Path,
    outputs: AtlasOutputs,
    report: str | Path,
    inputs: str | Path | None = None,
    sample_reads: int = 50,
) -> dict:
    """Check the atlas against the ingest tables and the input files' independent count;
    write ``report`` (JSON) when all hold.

    Checks: metadata has exactly the records of ``records.parquet`` (same keys, each
    once) with a status; both hold, file by file, as many records as the independent
    count of that input file in ``inputs`` (``inputs.json``) found; every ok/duplicate
    record has a fold outcome or (``ingest.redundancy``) is represented, and the
    outcomes add up to the records; every unique sequence appears once among
    folded/oom/error/represented first occurrences; every represented record has the
    representative the plan gave it, with a fold outcome, and no confidence of its own;
    every high-confidence structure (of a record or of a record's representative) has exactly one
    entry in the index and its shard exists (a sample of them is read back through the
    index); ``summary.json`` agrees with the tables (and with ``inputs``).
    """
    c = _Checker(records, sequences, outputs)
    c.records()
    if inputs is not None:
        c.inputs(read_inputs(inputs))
    c.sequences()
    c.structures(sample_reads)
    c.summary()
    if inputs is not None:
        c.summary_inputs(inputs)
    c.con.close()
    if c.problems:
        raise AccountingError(c.problems)
    checks = {k: v for k, v in c.checks.items() if k != "archived_high_confidence"}
    result = {"ok": True, "checks": checks}
    write_json(report, result)
    log.info("accounting holds: %s", checks)
    return result
