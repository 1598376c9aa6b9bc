"""The invariant that matters most: every input record is accounted for, exactly once.

The check runs one checksum bucket of the atlas at a time (:func:`check_bucket`, a job
each in the workflow: no accounting job holds the whole atlas's rows), then adds up the
buckets' counts (:func:`add_up_buckets`). A bucket's check re-reads the written tables
(never trusting what the writer meant to write): its records of ``records.parquet``
against its file of ``metadata.parquet``, its unique sequences, its members, and its
structures against its file of the index. The sum is compared with the independent
count of each input file (:mod:`foldatlas.inputs`, made from the decompressed text as it
was read, by code that shares nothing with the record parser), so records that ingest
lost, records that fell outside every bucket, or tables from a stale or partial read,
cannot pass. Every violation is listed in one :class:`AccountingError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from . import duck
from .archive import read_member
from .atlas import NO_BIN, bin_sql
from .atomic import write_json
from .buckets import bucket_names, bucket_where, has_members
from .errors import AccountingError
from .inputs import KEY_SUMS_SQL, InputCount, check_parts, inputs_summary, key_sums, read_inputs
from .layout import HIGHCONF, AtlasOutputs
from .status import FOLD_OUTCOMES, METADATA_STATUSES, REJECTED, Status, sql_in

__all__ = ["AccountingError", "add_up_buckets", "check_accounting", "check_bucket"]

log = logging.getLogger("foldatlas.accounting")


class _BucketChecker:
    """One DuckDB connection over one bucket's rows, collecting problems and counts."""

    def __init__(self, bucket: str, records: str | Path, sequences: str | Path, outputs: AtlasOutputs) -> None:
        self.con = duck.connect()
        self.bucket = bucket
        # the bucket's records, read once (each query below would scan records.parquet
        # again); a record without a checksum (empty, invalid characters) is the first bucket's
        self.con.execute(
            f"""CREATE TEMP TABLE bucket_records AS SELECT source_index, record_index, source, checksum, status
                FROM read_parquet({duck.sql_path(records)}) WHERE {bucket_where('checksum', bucket, nulls=True)}"""
        )
        self.rec = "bucket_records"
        self.seq = f"(SELECT * FROM read_parquet({duck.sql_path(sequences)}) WHERE {bucket_where('checksum', bucket)})"
        self.meta = f"read_parquet({duck.sql_path(outputs.part(outputs.metadata, bucket))})"
        # every bucket's metadata: a member anywhere may point at a representative here
        # (scanned only when the plan has members: ingest.redundancy)
        self.all_meta = f"read_parquet({duck.sql_path(outputs.metadata)})"
        self.plan_has_members = has_members(pq.ParquetFile(sequences).metadata)
        self.index = f"(SELECT * FROM read_parquet({duck.sql_path(outputs.part(outputs.index, bucket))}) WHERE collection = '{HIGHCONF}')"
        self.index_file = outputs.part(outputs.index, bucket)
        self.outputs = outputs
        self.problems: list[str] = []
        self.counts: dict[str, Any] = {}

    def one(self, sql: str) -> Any:
        return self.con.execute(sql).fetchall()[0]

    def problem(self, text: str) -> None:
        self.problems.append(f"bucket {self.bucket}: {text}")

    def records(self) -> None:
        """The bucket's file of metadata.parquet holds exactly the bucket's records of
        records.parquet, each once, with a status."""
        n_rec, n_meta = self.one(f"SELECT count(*) FROM {self.rec}")[0], self.one(f"SELECT count(*) FROM {self.meta}")[0]
        self.counts["records"] = n_rec
        if n_rec != n_meta:
            self.problem(f"records.parquet has {n_rec} records in this bucket, its metadata file {n_meta}")
        on = "r.source_index = m.source_index AND r.record_index = m.record_index"
        for sql, what in (
            (f"FROM (SELECT source_index, record_index FROM {self.meta} GROUP BY ALL HAVING count(*) > 1)", "{n} records appear more than once in its metadata file"),
            (f"FROM {self.rec} r ANTI JOIN {self.meta} m ON {on}", "{n} input records are missing from its metadata file"),
            (f"FROM {self.meta} m ANTI JOIN {self.rec} r ON {on}", "its metadata file holds {n} records that are not this bucket's records of records.parquet"),
            (f"FROM {self.rec} r JOIN {self.meta} m ON {on} WHERE r.checksum IS DISTINCT FROM m.checksum", "{n} records have another checksum in its metadata file than in records.parquet"),
            (f"FROM {self.meta} m WHERE ({bucket_where('m.checksum', self.bucket, nulls=True)}) IS NOT TRUE", "its metadata file holds {n} records of another bucket"),
            (f"FROM {self.meta} WHERE status IS NULL OR status NOT IN {sql_in(METADATA_STATUSES)}", "{n} metadata rows have no valid status (a folded record lost its prediction?)"),
        ):  # fmt: skip
            if n := self.one(f"SELECT count(*) {sql}")[0]:
                self.problem(what.format(n=n))
        outcomes = self.one(f"SELECT count(*) FROM {self.meta} WHERE status IN {sql_in(METADATA_STATUSES)}")[0]
        if outcomes != n_rec:
            self.problem(f"folded, oom, error, represented and rejected records add up to {outcomes}, not the {n_rec} records")
        self.counts["status"] = dict(sorted(self.con.execute(f"SELECT status, count(*) FROM {self.rec} GROUP BY status").fetchall()))
        self.counts["metadata_by_source"] = {str(i): n for i, n in sorted(self.con.execute(f"SELECT source_index, count(*) FROM {self.meta} GROUP BY source_index").fetchall())}
        self.counts["sources"] = {str(i): s for i, s in sorted(self.con.execute(f"SELECT DISTINCT source_index, source FROM {self.rec}").fetchall())}
        # each file's record count and the sums of its keys' first three powers: added up
        # over the buckets, they show that each file's records are numbered 0..n-1, each
        # once (add_up_buckets)
        found = sorted(self.con.execute(KEY_SUMS_SQL.format(table=self.rec)).fetchall())
        self.counts["records_by_source"] = {str(i): int(n) for i, n, *_ in found}
        self.counts["key_sums_by_source"] = {str(i): [int(x) for x in sums] for i, _, *sums in found}

    def sequences(self) -> None:
        """Every unique sequence of the bucket has exactly one first occurrence with a fold outcome."""
        n_seq = self.one(f"SELECT count(*) FROM {self.seq}")[0]
        self.counts["unique_sequences"] = n_seq
        firsts = self.one(f"SELECT count(*), count(DISTINCT checksum) FROM {self.meta} WHERE status IN {sql_in((*FOLD_OUTCOMES, Status.REPRESENTED))} AND NOT is_duplicate")
        if firsts[0] != n_seq or firsts[1] != n_seq:
            self.problem(f"{n_seq} unique sequences but {firsts[0]} first occurrences with a fold outcome or a representative ({firsts[1]} distinct)")
        self.members()

    def members(self) -> None:
        """Every represented record names a representative with a fold outcome, and it is
        resolved exactly as ``sequences.parquet`` (the plan) says; no member is counted
        as a high-confidence structure of its own."""
        n, planned = self.one(
            f"""SELECT count(*) FILTER (WHERE status = '{Status.REPRESENTED}'),
                       (SELECT coalesce(sum(n_records), 0) FROM {self.seq} WHERE representative IS NOT NULL) FROM {self.meta}"""
        )
        self.counts["represented_records"] = n
        if n != planned:
            self.problem(f"sequences.parquet resolves {planned} records to a representative, metadata.parquet marks {n} represented")
        bad = self.one(
            f"""SELECT count(*) FROM {self.meta} m LEFT JOIN {self.seq} s ON s.checksum = m.checksum
                WHERE m.status = '{Status.REPRESENTED}' AND (m.representative IS DISTINCT FROM s.representative OR m.identity IS NULL OR m.coverage IS NULL
                      OR m.rep_status IS NULL OR m.rep_status NOT IN {sql_in(FOLD_OUTCOMES)} OR m.high_confidence OR m.plddt IS NOT NULL)"""
        )[0]
        if bad:
            self.problem(f"{bad} represented records lack their planned representative's fold outcome, or carry confidences of their own")

    def structures(self, sample_reads: int) -> None:
        """The bucket's high-confidence structures (its records' own, and the
        representatives in this bucket of records in any bucket) are exactly the bucket's
        high-confidence index entries, each once, in existing shards; a sample is read back."""
        theirs = f"UNION SELECT representative FROM {self.all_meta} WHERE rep_high_confidence AND {bucket_where('representative', self.bucket)}"
        # DISTINCT: a sequence's duplicate records are high-confidence with it
        wanted = f"(SELECT DISTINCT checksum FROM {self.meta} WHERE high_confidence {theirs if self.plan_has_members else ''})"
        hc = self.one(f"SELECT count(*) FROM {wanted}")[0]
        self.counts["high_confidence"] = hc
        idx = self.one(f"SELECT count(*), count(DISTINCT checksum) FROM {self.index}")
        self.counts["archived_high_confidence"] = idx[0]
        if idx[0] != hc or idx[1] != hc:
            self.problem(f"{hc} high-confidence sequences but {idx[0]} high-confidence index entries ({idx[1]} distinct)")
        unindexed = self.one(f"SELECT count(*) FROM {wanted} m ANTI JOIN {self.index} i ON i.checksum = m.checksum")[0]
        if unindexed:
            self.problem(f"{unindexed} high-confidence sequences have no structure in the archives")
        unwanted = self.one(f"SELECT count(*) FROM {self.index} i ANTI JOIN {wanted} m ON i.checksum = m.checksum")[0]
        if unwanted:
            self.problem(f"{unwanted} high-confidence index entries are neither a record's structure nor a representative's")
        every = f"read_parquet({duck.sql_path(self.index_file)})"
        self.counts["index_rows"] = self.one(f"SELECT count(*) FROM {every}")[0]
        self.read_back(every, "index", sample_reads)

    def read_back(self, table: str, name: str, sample_reads: int) -> None:
        """Every archive an index ``table`` (SQL) names exists, and ``sample_reads`` of
        its entries read back as PDB text of the size it records."""
        for (archive,) in self.con.execute(f"SELECT DISTINCT archive FROM {table}").fetchall():
            if not (self.outputs.root / archive).is_file():
                self.problem(f"{name} names {archive}, which does not exist")
        sample = f"SELECT archive, member, data_offset, data_length, pdb_size FROM {table} USING SAMPLE {int(sample_reads)} ROWS"
        for archive, member, offset, length, size in self.con.execute(sample).fetchall():
            try:
                data = read_member(self.outputs.root / archive, offset, length, expect=member)
                if len(data) != size or not data.startswith(b"REMARK"):
                    self.problem(f"{archive}:{member}: expected {size} bytes of PDB, found {len(data)}")
            except (OSError, ValueError) as exc:
                self.problem(f"{archive}:{member}: {exc}")

    def bins(self, sample_reads: int) -> None:
        """With atlas.bins (summary.json counts bins): the bucket's bin shards hold each
        structure of its index (every collection) once, in the bin its metadata gives
        it, in existing shards of the bucket's bins folder; a sample is read back."""
        summary = json.loads(Path(self.outputs.summary).read_text())
        if summary.get("bins") is None:
            return
        path = self.outputs.part(self.outputs.bins_index, self.bucket)
        if not path.is_file():
            self.problem(f"atlas.bins is on but {path} does not exist")
            return
        bins = f"read_parquet({duck.sql_path(path)})"
        every = f"read_parquet({duck.sql_path(self.index_file)})"
        rows, distinct = self.one(f"SELECT count(*), count(DISTINCT checksum) FROM {bins}")
        self.counts["bin_structures"] = rows
        structures = self.one(f"SELECT count(DISTINCT checksum) FROM {every}")[0]
        if rows != distinct or rows != structures:
            self.problem(f"{structures} structures in its index but {rows} bin shard entries ({distinct} distinct)")
        for sql, what in (
            (f"FROM (SELECT DISTINCT checksum FROM {every}) i ANTI JOIN {bins} b USING (checksum)", "{n} structures of its index are in no bin shard"),
            (f"FROM {bins} b ANTI JOIN {self._bins_expected()} e ON e.checksum = b.checksum AND e.bin = b.collection", "{n} bin shard entries are not in the bin of their metadata"),
            (f"FROM {bins} WHERE NOT starts_with(archive, 'bins/{self.bucket}/' || collection || '_')", "{n} bin shard entries are not in a shard of their bin in the bucket's folder"),
        ):  # fmt: skip
            if n := self.one(f"SELECT count(*) {sql}")[0]:
                self.problem(what.format(n=n))
        self.read_back(bins, "bins index", sample_reads)

    def _bins_expected(self) -> str:
        """(checksum, bin) of the bucket's structures from the metadata: a record's own
        bin and, when the plan has members, the bin of each representative in this bucket
        from the confidences its members carry (a representative only members of other
        buckets point at has no record here); ``NO_BIN`` for a NaN confidence."""
        own = f"SELECT DISTINCT checksum, coalesce(bin, '{NO_BIN}') AS bin FROM {self.meta} WHERE checksum IS NOT NULL"
        if not self.plan_has_members:
            return f"({own})"
        reps = f"""SELECT DISTINCT representative, {bin_sql("rep_ptm", "rep_plddt")} FROM {self.all_meta}
                   WHERE status = '{Status.REPRESENTED}' AND {bucket_where("representative", self.bucket)}"""
        return f"({own} UNION {reps})"


def check_bucket(
    bucket: str,
    *,
    records: str | Path,
    sequences: str | Path,
    outputs: AtlasOutputs,
    report: str | Path | None = None,
    sample_reads: int = 50,
) -> dict:
    """Check one checksum bucket of a finished atlas against the ingest tables; write
    ``report`` (JSON: the bucket and its counts) when all holds, and return it.

    The bucket's records are those of ``records.parquet`` whose checksum is in
    ``bucket`` (and, in the first bucket, those without a checksum). Checks: the
    bucket's metadata file holds exactly these records (same keys, each once, none of
    another bucket) with a status, and the outcomes add up to the records; every unique
    sequence of the bucket appears once among folded/oom/error/represented first
    occurrences; every represented record has the representative the plan gave it,
    with a fold outcome, and no confidence of its own; the bucket's high-confidence
    structures (its records', and those of representatives in the bucket that records of
    any bucket point at) have exactly one index entry each in the bucket's index file,
    and nothing else is there; the shards exist, and ``sample_reads`` entries are read
    back through the index. With atlas.bins, each structure of the bucket's index is in
    its bin shards once, in the bin its metadata gives it (:meth:`_BucketChecker.bins`).

    The counts (records and metadata rows per input file, statuses, unique sequences,
    represented records, high-confidence structures, index entries) are what
    :func:`add_up_buckets` adds up.

    Raises
    ------
    AccountingError
        Listing every violation, each naming the bucket.
    """
    c = _BucketChecker(bucket, records, sequences, outputs)
    try:
        c.records()
        c.sequences()
        c.structures(sample_reads)
        c.bins(sample_reads)
    finally:
        c.con.close()
    if c.problems:
        raise AccountingError(c.problems)
    # the finished atlas this report is of: add_up_buckets refuses a report of another
    result = {"bucket": bucket, "summary_sha256": _sha256(outputs.summary), "counts": c.counts}
    if report is not None:
        write_json(report, result)
    return result


def _sum_buckets(reports: list[dict]) -> dict[str, Any]:
    """The buckets' counts added up (per input file: by source_index)."""
    total: dict[str, Any] = {"records_by_source": {}, "metadata_by_source": {}, "status": {}, "sources": {}, "key_sums_by_source": {}}
    for key in ("records", "unique_sequences", "represented_records", "high_confidence", "archived_high_confidence", "index_rows"):
        total[key] = sum(r["counts"][key] for r in reports)
    total["bin_structures"] = sum(r["counts"].get("bin_structures", 0) for r in reports)
    for r in reports:
        for key in ("records_by_source", "metadata_by_source", "status"):
            for k, n in r["counts"][key].items():
                total[key][k] = total[key].get(k, 0) + n
        for k, sums in r["counts"]["key_sums_by_source"].items():
            total["key_sums_by_source"][k] = [a + b for a, b in zip(total["key_sums_by_source"].get(k, [0, 0, 0]), sums)]
        total["sources"].update(r["counts"]["sources"])
    return total


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Sum:
    """The global check over the buckets' reports: what no bucket can see alone."""

    def __init__(self, reports: list[dict], outputs: AtlasOutputs) -> None:
        self.reports = reports
        self.total = _sum_buckets(reports)
        self.outputs = outputs
        self.summary = json.loads(Path(outputs.summary).read_text())
        self.problems: list[str] = []

    def buckets(self) -> None:
        """One report for each of the atlas's buckets (summary.json's), a whole split."""
        got = [r["bucket"] for r in self.reports]
        expected = self.summary.get("buckets")
        if expected is None:
            self.problems.append("summary.json names no buckets (expected the atlas's checksum buckets)")
        elif sorted(got) != sorted(expected):
            self.problems.append(f"expected the accounting of the atlas's buckets {_short(expected)}, found {_short(sorted(got))}")
        elif len(set(got)) != len(got) or sorted(got) not in [bucket_names(d) for d in range(3)]:
            self.problems.append(f"the buckets {_short(sorted(got))} are not one whole split of the checksums")
        digest = _sha256(self.outputs.summary)
        stale = [r["bucket"] for r in self.reports if r.get("summary_sha256") != digest]
        if stale:
            self.problems.append(f"the accounting of buckets {_short(stale)} was made for another summary.json (expected reports of the finished atlas)")

    def keys(self) -> None:
        """Each input file's records, over all buckets, are numbered 0..n-1, each once:
        two records of different buckets that share a key, or a key that no record
        has, change the sums of the keys' powers (each bucket checks only its own)."""
        for i, n in sorted(self.total["records_by_source"].items()):
            if self.total["key_sums_by_source"].get(i) != key_sums(n):
                name = self.total["sources"].get(i, f"source_index {i}")
                self.problems.append(f"{name}: expected its {n} records numbered 0..{n - 1}, each once (record_index), found other keys (two records share one, or one is out of that range)")

    def folders(self) -> None:
        """The atlas's folders hold exactly its buckets' files (a reader takes every
        file of a folder), and their footers count the rows the buckets counted."""
        buckets = self.summary.get("buckets") or []
        o = self.outputs
        bins = self.summary.get("bins") is not None
        if not bins and o.bins.exists():
            self.problems.append(f"{o.bins} exists, but summary.json says atlas.bins is off")
        for folder, names in o.bucket_folders(buckets, bins=bins):
            found = {f.name for f in folder.iterdir()} if folder.is_dir() else set()
            if found != names:
                self.problems.append(f"{folder} holds {_short(sorted(found - names))} beside this atlas's buckets, and lacks {_short(sorted(names - found))}")
        for table, rows in ((o.metadata, self.total["records"]), (o.index, self.total["index_rows"])):
            files = [o.part(table, b) for b in buckets if o.part(table, b).is_file()]
            n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            if n != rows:
                self.problems.append(f"{table} holds {n} rows, its buckets' accounting counts {rows}")

    def inputs(self, counts: list[InputCount]) -> None:
        """records.parquet and metadata.parquet hold, file by file, the records the
        independent count of each input file found: all buckets together."""
        for key, what in (("records_by_source", "records.parquet"), ("metadata_by_source", "metadata.parquet")):
            try:
                check_parts(counts, {int(i): n for i, n in self.total[key].items()}, what)
            except AccountingError as exc:
                self.problems.extend(exc.problems)
        names = self.total["sources"]
        for c in counts:
            if str(c.source_index) in names and names[str(c.source_index)] != c.source:
                self.problems.append(f"records.parquet names source_index {c.source_index} {names[str(c.source_index)]!r}, the input count {c.source!r}")

    def counts(self) -> None:
        """summary.json agrees with the buckets' counts, and its statuses add up."""
        summary, t, status = self.summary["counts"], self.total, self.total["status"]
        expected = {
            "records_in": t["records"],
            "unique_sequences": t["unique_sequences"],
            "high_confidence": t["high_confidence"],
            "archived_high_confidence": t["archived_high_confidence"],
            "duplicates": status.get(Status.DUPLICATE, 0),
            "records_ok": status.get(Status.OK, 0),
            "too_long": status.get(Status.TOO_LONG, 0),
            "represented_records": t["represented_records"],
        }
        if self.summary.get("bins") is not None and sum(self.summary["bins"].values()) != t["bin_structures"]:
            self.problems.append(f"summary.json counts {sum(self.summary['bins'].values())} structures in bin shards, the buckets' accounting {t['bin_structures']}")
        for key, value in expected.items():
            if summary.get(key) != value:
                self.problems.append(f"summary.json counts {key}={summary.get(key)}, the tables say {value}")
        parts = summary["records_ok"] + summary["duplicates"] + sum(summary[str(s)] for s in REJECTED)
        if parts != summary["records_in"]:
            self.problems.append(f"summary.json: statuses add up to {parts}, not records_in={summary['records_in']}")

    def summary_inputs(self, inputs: str | Path) -> None:
        """summary.json's per-file records are those of inputs.json."""
        if "inputs" not in self.summary:
            self.problems.append(f"summary.json has no per-file inputs (expected those of {inputs})")
        elif self.summary["inputs"] != inputs_summary(inputs):
            self.problems.append(f"summary.json's inputs differ from {inputs}")


def _short(buckets: list[str]) -> str:
    return str(buckets) if len(buckets) <= 8 else f"[{', '.join(buckets[:4])}, ... {len(buckets)} in all]"


def add_up_buckets(reports: list[dict], *, outputs: AtlasOutputs, report: str | Path, inputs: str | Path | None = None) -> dict:
    """Add up the buckets' accounting (``reports``: what :func:`check_bucket` returned
    for each bucket) and check the sums; write ``report`` (JSON) when all holds.

    Checks: there is one report for each of the atlas's buckets (``summary.json``'s,
    one whole split of the checksums); summed over the buckets, ``records.parquet`` and
    ``metadata.parquet`` hold, file by file, as many records as the independent count of
    that input file in ``inputs`` (``inputs.json``) found, so a record in no bucket is
    missing there; ``summary.json`` agrees with the sums (and with ``inputs``).

    Raises
    ------
    AccountingError
        Listing every violation.
    """
    s = _Sum(reports, outputs)
    s.buckets()
    s.keys()
    s.folders()
    if inputs is not None:
        s.inputs(read_inputs(inputs))
    s.counts()
    if inputs is not None:
        s.summary_inputs(inputs)
    if s.problems:
        raise AccountingError(s.problems)
    t = s.total
    checks = {"records": t["records"], "input_files": len(read_inputs(inputs)) if inputs is not None else None, "unique_sequences": t["unique_sequences"],
              "represented_records": t["represented_records"], "high_confidence": t["high_confidence"], "buckets": len(reports)}  # fmt: skip
    result = {"ok": True, "checks": {k: v for k, v in checks.items() if v is not None}}
    write_json(report, result)
    log.info("accounting holds over %d buckets: %s", len(reports), result["checks"])
    return result


def check_accounting(
    *,
    records: str | Path,
    sequences: str | Path,
    outputs: AtlasOutputs,
    report: str | Path,
    inputs: str | Path | None = None,
    sample_reads: int = 50,
) -> dict:
    """Check a finished atlas in one call: :func:`check_bucket` for every bucket
    ``summary.json`` names, then :func:`add_up_buckets`; write ``report`` when all holds.

    Raises
    ------
    AccountingError
        Listing every violation of every bucket and of the sums.
    """
    buckets = json.loads(Path(outputs.summary).read_text()).get("buckets") or []
    reports, problems = [], []
    for b in buckets:
        try:
            reports.append(check_bucket(b, records=records, sequences=sequences, outputs=outputs, sample_reads=sample_reads))
        except AccountingError as exc:
            problems.extend(exc.problems)
    if problems:
        raise AccountingError(problems)
    return add_up_buckets(reports, outputs=outputs, report=report, inputs=inputs)
