"""The store: predictions kept across runs, so that each sequence is folded once per model.

A campaign is many runs over months. The store (``store.path``) holds every fold job's
outputs under a **model fingerprint** (:func:`foldatlas.settings.model_fingerprint`: the
model and every setting that can change a prediction), and lists them in **releases**:

- a run plans chunks only for the unique sequences that no published release of its
  fingerprint holds (an anti-join of ``sequences`` against every release's
  ``keys``, one file per checksum bucket, in DuckDB), numbering them after the last published chunk, so chunk
  ids are unique across releases;
- after its fold jobs, :func:`publish_bucket` (one job per checksum bucket of the plan)
  checks that every new chunk's predictions hold exactly the sequences planned into it
  and stages the bucket's files; :func:`finish_release` links them into
  ``releases/<name>/``, records the SHA-256 and size of every file in its
  ``release.json`` with the release's inputs and counts, and then replaces
  ``manifest.json`` atomically (:func:`publish_release` does both in one call): a reader (and a run killed at any point) sees
  the old manifest or the new one, never a half one. A published release is never
  written again;
- the atlas of a run is a view over the store: every unique sequence of the run's
  inputs points at the chunk and release that folded it (``sequences.parquet``).

A run whose new sequences are none and whose inputs are those of a published release
reuses that release instead of adding an empty one. One run at a time per store: a
release planned while another run published is stopped at publication (the manifest's
``generation`` moved), with the command to plan again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__, duck, faults
from .atomic import atomic_dir, write_json
from .buckets import WHOLE, bucket_bounds, bucket_names, bucket_where
from .errors import InternalError, StaleOutputError
from .inputs import read_inputs
from .layout import BUCKET_DIGITS, MEMBERS_FILE, ChunkOutputs, StoreLayout, chunk_id, fresh_dir, parse_chunk_id
from .seal import Seal, chunk_seal, checksums_digest, file_checksum
from .tables import KEYS_SCHEMA, MEMBERS_SCHEMA, RELEASE_CHUNKS_SCHEMA, STORE_INDEX_SCHEMA, STORE_SEQUENCES_SCHEMA, write_table

__all__ = ["FORMAT", "WHOLE", "Planned", "PlannedRelease", "finish_release", "publish_bucket", "release_buckets", "check_unpublished", "reserve_chunks", "read_manifest", "plan_release", "publish_release", "release_chunks", "release_chunk_files", "file_checksum", "published_files", "verify_release", "release_history", "atlas_sources", "bucket_sources"]

log = logging.getLogger("foldatlas.store")

#: Version of the manifest and release records this foldatlas writes.
FORMAT = 1
_FILES = ("predictions", "embeddings", "structures")


@dataclass(frozen=True)
class PlannedRelease:
    """The release a plan is for: written to the chunks folder by ``plan_chunks``.

    ``generation`` is the manifest's generation the plan anti-joined against: if another
    run published since, publication stops (the plan may refold what that run folded,
    and its chunk ids may collide)."""

    name: str
    fingerprint: str
    first_chunk: int
    generation: int


def _empty_manifest(fingerprint: str) -> dict:
    return {"format": FORMAT, "fingerprint": fingerprint, "generation": 0, "next_chunk": 0, "releases": []}


def read_manifest(store: StoreLayout) -> dict:
    """The store's manifest for one fingerprint (an empty one when nothing was published).

    Raises
    ------
    StaleOutputError
        The manifest is of another format or fingerprint than its folder says.
    """
    if not store.manifest.exists():
        return _empty_manifest(store.fingerprint)
    m = json.loads(store.manifest.read_text())
    if m.get("format") != FORMAT or m.get("fingerprint") != store.fingerprint:
        raise StaleOutputError(
            str(store.manifest), f"expected format {FORMAT} and fingerprint {store.fingerprint}, found {m.get('format')} and {m.get('fingerprint')}"
        )
    return m


def plan_release(store: StoreLayout, name: str, outputs_key: str, *, write_key: bool = True) -> tuple[PlannedRelease, list[Path]]:
    """The release a new plan is for, and the ``keys`` files of every published release
    (the anti-join). ``name`` is ``store.release`` (empty: the next number, ``r0001``...).
    Its chunks are numbered after every chunk folder of the store (:func:`reserve_chunks`).

    Writes ``key.json`` (the settings the fingerprint stands for) on first use; with
    ``write_key=False`` only checks it where it exists (jobs that run side by side, such
    as the ``plan_bucket`` jobs, leave the write to one job).

    Raises
    ------
    StaleOutputError
        ``key.json`` holds other settings than ``outputs_key`` (the folder was copied
        under another fingerprint's name).
    """
    _check_key(store, outputs_key, write=write_key)
    m = read_manifest(store)
    name = name or f"r{len(m['releases']) + 1:04d}"
    known = [f for r in m["releases"] for f in _bucket_files(store, r["name"], "keys")]
    # after every published chunk and every chunk reserved by an earlier plan (folded or
    # not, published or not): a chunk folder is never written by two plans
    first = max([int(m["next_chunk"]), *(c + 1 for c in store.chunk_numbers())])
    return PlannedRelease(name, store.fingerprint, first, int(m["generation"])), known


def reserve_chunks(store: StoreLayout, chunks: list[int]) -> None:
    """Create the folders of a plan's chunks in the store, so that a later plan (another
    run on the same store, or this one planned again) numbers its chunks after them."""
    for c in chunks:
        store.chunk_outputs(chunk_id(c)).predictions.parent.mkdir(parents=True, exist_ok=True)


def _check_key(store: StoreLayout, outputs_key: str, *, write: bool = True) -> None:
    want = json.loads(outputs_key)
    if store.key.exists():
        found = json.loads(store.key.read_text())
        if found != want:
            raise StaleOutputError(str(store.key), f"expected the settings of fingerprint {store.fingerprint} ({outputs_key}), found {json.dumps(found, sort_keys=True)}")
        return
    if write:
        write_json(store.key, want)



@dataclass(frozen=True)
class Planned:
    """A plan's ``release.json`` (the chunks folder's): the release, its new chunks, each
    chunk's checksum bucket ("" when the plan is not split: plans of foldatlas < 0.7 are
    not) and the number of hex digits of the buckets."""

    path: Path
    release: PlannedRelease
    chunks: list[int]
    buckets: dict[int, str]
    digits: int
    #: the first 16 hex digits of the planned release.json's SHA-256: which plan staged what
    ident: str

    @classmethod
    def read(cls, planned: str | os.PathLike[str]) -> Planned:
        text = Path(planned).read_bytes()
        rec = json.loads(text)
        fields = {f.name for f in dataclasses.fields(PlannedRelease)}
        chunks = [int(c) for c in rec["chunks"]]
        buckets = rec.get("buckets") or [""] * len(chunks)
        if len(buckets) != len(chunks):
            raise StaleOutputError(str(planned), f"expected a bucket for each of its {len(chunks)} chunks, found {len(buckets)}: plan again (snakemake --forcerun plan_chunks)")
        digits = int(rec.get("bucket_digits", 0))
        release = PlannedRelease(**{k: v for k, v in rec.items() if k in fields})
        p = cls(Path(planned), release, chunks, dict(zip(chunks, buckets)), digits, hashlib.sha256(text).hexdigest()[:16])
        stray = {b or WHOLE for b in set(p.buckets.values())} - set(p.bucket_names())
        if stray:
            raise InternalError(f"{planned}: expected chunks in buckets of {digits} hex digits, found buckets {sorted(stray)}")
        return p

    @property
    def members(self) -> Path:
        """The members this plan resolved (``ingest.redundancy``), when it did."""
        return self.path.parent / MEMBERS_FILE

    def bucket_names(self) -> list[str]:
        """Every bucket of the plan's release: one ``publish_bucket`` job each."""
        return bucket_names(self.digits)

    def chunks_of(self, bucket: str) -> list[int]:
        return self.chunks if bucket == WHOLE else [c for c in self.chunks if self.buckets[c] == bucket]


def release_buckets(planned: str | os.PathLike[str]) -> list[str]:
    """The checksum buckets the release a plan made is published in, one
    :func:`publish_bucket` job each: every prefix of the plan's ``chunks.bucket_digits``
    hex digits, or :data:`WHOLE` for a plan not split into buckets."""
    return Planned.read(planned).bucket_names()


def publish_release(store: StoreLayout, *, planned: str | os.PathLike[str], sequences: str | os.PathLike[str], inputs: str | os.PathLike[str], receipt: str | os.PathLike[str], memory_gb: float = 1.0, threads: int = 1, scratch_dir: str | os.PathLike[str] | None = None) -> dict:
    """Publish the release a plan made (``planned``: the chunks folder's ``release.json``)
    once its fold jobs are done, and write the run's ``receipt``; return the release record.
    What the workflow's jobs do, in one call: :func:`publish_bucket` for every bucket of
    the plan (:func:`release_buckets`) one after the other, then :func:`finish_release`.
    ``memory_gb`` caps DuckDB's sorts (run on ``threads``: each thread adds to DuckDB's
    memory); they spill beyond it to ``scratch_dir`` (emptied first and removed at the
    end; by default a hidden folder beside ``receipt``).

    Idempotent: a release published already with the same chunks and inputs (a rerun) is
    only acknowledged. A plan without new sequences over the inputs of a published release
    reuses that release.

    Raises
    ------
    StaleOutputError
        Another run published since this plan was made; the name is published with other
        content; a new chunk's predictions are missing or hold other sequences than the
        plan put in the chunk.
    """
    tmp = fresh_dir(scratch_dir or Path(receipt).parent / ".publish_release.scratch")
    try:
        parts = [tmp / f"{b}.json" for b in release_buckets(planned)]
        for part in parts:
            publish_bucket(store, part.stem, planned=planned, sequences=sequences, inputs=inputs, part=part, memory_gb=memory_gb, threads=threads, scratch_dir=tmp / "work")
        return finish_release(store, planned=planned, parts=parts, inputs=inputs, sequences=sequences, receipt=receipt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_bucket(store: StoreLayout, bucket: str, *, planned: str | os.PathLike[str], sequences: str | os.PathLike[str], inputs: str | os.PathLike[str], part: str | os.PathLike[str], memory_gb: float = 1.0, threads: int = 1, scratch_dir: str | os.PathLike[str] | None = None) -> dict:
    """Check the new chunks of one checksum ``bucket`` of a planned release against the
    plan, and stage the release's files of that bucket in the store
    (:meth:`~foldatlas.layout.StoreLayout.release_staging`): its part of the chunk list and
    of the ``keys``, ``structures``, ``sequences`` and ``members`` bucket files. Writes
    ``part`` (what it staged, with each file's SHA-256 and identity, for
    :func:`finish_release`) and
    returns it. It reads only its bucket's rows of ``sequences`` (sorted by bucket, so
    Parquet's statistics skip the rest) and its bucket's chunks. A release published
    already (a rerun) is not staged again: ``part`` names it. ``memory_gb``, ``threads``
    and ``scratch_dir`` as for :func:`publish_release`.

    Raises
    ------
    StaleOutputError
        As :func:`publish_release`, for this bucket's chunks; ``bucket`` is not one of
        the plan's (:func:`release_buckets`).
    """
    p = Planned.read(planned)
    if bucket not in p.bucket_names():
        names = p.bucket_names()
        raise StaleOutputError(str(planned), f"expected one of the plan's {len(names)} buckets ({', '.join(names[:3])}{'...' if len(names) > 3 else ''}), found {bucket!r}")
    _, same = _published_as(store, p, inputs)
    if same is not None:
        write_json(part, {"bucket": bucket, "release": p.release.name, "plan": p.ident, "published": same["name"]})
        return {"bucket": bucket, "published": same["name"]}
    tmp = fresh_dir(scratch_dir or Path(part).parent / f".publish_bucket_{bucket}.scratch")
    try:
        with contextlib.closing(duck.connect(tmp / "publish.duckdb", memory_gb=memory_gb, spill_dir=tmp / "spill", threads=threads)) as con:
            record = _stage_bucket(store, p, bucket, con, tmp, sequences=sequences)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(part, record)
    return record


def _published_as(store: StoreLayout, p: Planned, inputs: str | os.PathLike[str]) -> tuple[dict, dict | None]:
    """The manifest, and the published release this plan duplicates (None: a new
    release, to publish; see :func:`_published_match`)."""
    m = read_manifest(store)
    if p.release.fingerprint != store.fingerprint:
        raise StaleOutputError(str(p.path), f"planned against fingerprint {p.release.fingerprint}, publishing to {store.fingerprint}: plan again (snakemake --forcerun plan_chunks)")
    sources = sorted({c.source_id for c in read_inputs(inputs)})
    resolves = p.members.exists() and pq.ParquetFile(p.members).metadata.num_rows > 0
    same = _published_match(store, m, p.release, p.chunks, sources, resolves)
    if same is None and any(r["name"] == p.release.name for r in m["releases"]):
        raise InternalError(f"release {p.release.name} is published: refusing to write its folder again")
    return m, same


def finish_release(store: StoreLayout, *, planned: str | os.PathLike[str], parts: Sequence[str | os.PathLike[str]], sequences: str | os.PathLike[str], inputs: str | os.PathLike[str], receipt: str | os.PathLike[str]) -> dict:
    """Publish a planned release whose buckets are staged (``parts``: what
    :func:`publish_bucket` wrote for every bucket of the plan), and write the run's
    ``receipt``; return the release record. The staged files are linked into the release
    folder (hard links: same file system; copied where links are refused), which is
    swapped in whole; then the manifest is replaced atomically, and the staging removed.
    Reads no chunk and hashes no file: the bucket jobs did, and each staged file's inode,
    modification time and size are checked against its part. Idempotent as
    :func:`publish_release`.

    Raises
    ------
    StaleOutputError
        A bucket's part is missing, of another release, or its staged files are gone or
        changed; and as :func:`publish_release`.
    """
    p = Planned.read(planned)
    m, same = _published_as(store, p, inputs)
    if same is not None:
        log.info("release %s is published already with these inputs and chunks: nothing to publish", same["name"])
        _write_receipt(store, receipt, m, same["name"])
        shutil.rmtree(store.release_staging(p.release.name, p.ident), ignore_errors=True)
        return same
    staged = _staged_parts(p, parts)
    name = p.release.name
    record = {
        "format": FORMAT, "name": name, "fingerprint": store.fingerprint, "foldatlas": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": [{"source_id": c.source_id, "source": c.source, "text_sha256": c.text_sha256, "records": c.records} for c in read_inputs(inputs)],
        "counts": _release_counts(sequences, name, inputs),
    }  # fmt: skip
    with atomic_dir(store.release_dir(name)) as staging:
        record.update(_link_parts(store, p, staged, staging))
        write_json(staging / store.release_file(name).name, record)
    faults.kill_point("release_written")  # the release folder is in place, the manifest does not list it yet
    entry = {"name": name, "created": record["created"], "new_sequences": record["counts"]["new_sequences"], **file_checksum(store.release_file(name))}
    next_chunk = max([int(m["next_chunk"]), *(c + 1 for c in p.chunks)])
    write_json(store.manifest, {**m, "generation": m["generation"] + 1, "next_chunk": next_chunk, "releases": [*m["releases"], entry]})
    faults.kill_point("manifest_written")
    shutil.rmtree(store.release_staging(name, p.ident), ignore_errors=True)
    log.info("published release %s: %d new sequences in %d chunks", name, record["counts"]["new_sequences"], len(p.chunks))
    _write_receipt(store, receipt, read_manifest(store), name)
    return record


def _staged_parts(p: Planned, parts: Sequence[str | os.PathLike[str]]) -> list[dict]:
    """The parts of every bucket of the plan, in bucket order, checked to be this
    release's and to stage something."""
    found: dict[str, dict] = {}
    for path in parts:
        rec = json.loads(Path(path).read_text())
        if rec.get("release") != p.release.name or "published" in rec or rec.get("plan") != p.ident:
            what = f"release {rec.get('release')}" + (f", found published as {rec['published']} when it ran" if "published" in rec else f" of plan {rec.get('plan')}")
            raise StaleOutputError(str(path), f"expected the staged files of release {p.release.name} of plan {p.ident}, found {what}: delete it to stage the bucket again")
        found[rec["bucket"]] = {**rec, "part": str(path)}
    if sorted(found) != p.bucket_names():
        missing = sorted(set(p.bucket_names()) - set(found))
        raise StaleOutputError(str(p.path), f"expected a staged part for each of the plan's {len(p.bucket_names())} buckets, found {len(found)} (missing: {', '.join(missing[:5]) or 'none'}; "
                               f"not the plan's: {', '.join(sorted(set(found) - set(p.bucket_names()))[:5]) or 'none'})")  # fmt: skip
    return [found[b] for b in p.bucket_names()]


def _link_parts(store: StoreLayout, p: Planned, staged: Sequence[dict], folder: Path) -> dict:
    """Link every bucket's staged files into the release ``folder``; return the record's
    ``chunks`` and bucket-file entries (``keys``, ``structures``, ``sequences``, and
    ``members`` when the plan resolved members), as one publication would list them."""
    name = p.release.name
    listed = store.release_chunks(name).name
    for rec in staged:
        _check_staged(store.release_staging(name, p.ident, rec["bucket"]), listed, rec)
    out: dict[str, Any] = {"chunks": _merge_chunk_lists([store.release_staging(name, p.ident, r["bucket"]) / listed for r in staged], folder / listed, p.chunks)}
    for what, where in _BUCKETED.items():
        if what == "members" and not p.members.exists():
            continue
        merged: dict[str, Any] = {"rows": 0, "buckets": {}}
        for rec in staged:
            staging = store.release_staging(name, p.ident, rec["bucket"])
            for b, info in rec[what]["buckets"].items():
                relative = StoreLayout.bucket_file(Path(where(store, name).name), b)
                _check_staged(staging, str(relative), rec)
                _link(staging / relative, folder / relative)
                merged["buckets"][b] = info
            merged["rows"] += rec[what]["rows"]
        out[what] = merged
    return out


def _staged_identities(folder: Path) -> dict[str, list[int]]:
    """Inode, modification time and size of every file a bucket job staged: the files
    are renamed into place, never written again, so another identity means another
    writer (another plan's job, or damage)."""
    return {str(f.relative_to(folder)): [st.st_ino, st.st_mtime_ns, st.st_size] for f in sorted(folder.rglob("*.parquet")) for st in [f.stat()]}


def _check_staged(folder: Path, relative: str, rec: Mapping[str, Any]) -> None:
    """A staged file is the one its bucket job wrote (:func:`_staged_identities`)."""
    path, want = folder / relative, rec["staged"].get(relative)
    st = path.stat() if path.exists() else None
    found = [st.st_ino, st.st_mtime_ns, st.st_size] if st else None
    if want is None or found != want:
        what = "nothing" if st is None else f"a file of {st.st_size} bytes that is not the one staged (inode, modification time or size differ)"
        raise StaleOutputError(str(path), f"expected the file its bucket job staged ({want[2] if want else '?'} bytes), found {what}: delete {rec['part']} to stage the bucket again")


def _link(source: Path, target: Path) -> None:
    """``source`` (a staged file) at ``target`` too: a hard link, or a copy where the file
    system refuses links."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError as exc:
        log.warning("could not hard-link %s (%s): copying it", source, exc)
        shutil.copyfile(source, target)


def _merge_chunk_lists(paths: Sequence[Path], out: Path, chunks: Sequence[int]) -> dict:
    """The buckets' chunk lists as the release's (``chunks.parquet``): every chunk of the
    plan once, ascending; return its rows, SHA-256 and size."""
    table = pa.concat_tables([pq.read_table(path, schema=RELEASE_CHUNKS_SCHEMA) for path in paths]).sort_by("chunk")
    if table["chunk"].to_pylist() != sorted(chunks):
        raise InternalError(f"expected the staged chunk lists to hold the plan's {len(chunks)} chunks once each, found {table.num_rows} rows ({len(set(table['chunk'].to_pylist()) - set(chunks))} not the plan's)")
    write_table(table, out, RELEASE_CHUNKS_SCHEMA)
    return {"rows": table.num_rows, **file_checksum(out)}


def _stage_bucket(store: StoreLayout, p: Planned, bucket: str, con: Any, tmp: Path, *, sequences: str | os.PathLike[str]) -> dict:
    """Check one bucket's new chunks against the plan and write its staged files; return
    its part. Every table is streamed through DuckDB in sorted order (spilling under its
    memory limit) and written one batch at a time: this holds one chunk's checksums and
    one batch, whatever the bucket's size."""
    name = p.release.name
    # the bucket's checksums: from its prefix up to (not including) the prefix then "g",
    # after every hex digit; a range, so Parquet's row-group statistics skip the rest
    bounds = dict(zip(("lo", "hi"), bucket_bounds(bucket)))
    seqs = f"(SELECT * FROM read_parquet({duck.sql_path(sequences)}) WHERE release = $name AND representative IS NULL AND checksum >= $lo AND checksum < $hi)"

    def planned_checksums(c: int) -> list[str]:  # read only to explain a mismatch
        return [r[0] for r in con.sql(f"SELECT checksum FROM {seqs} WHERE chunk = $chunk", params={"name": name, "chunk": c, **bounds}).fetchall()]

    planned = _planned_digests(con, seqs, p.chunks_of(bucket), name=name, **bounds)
    seals = {c: _check_chunk(store.chunk_outputs(chunk_id(c)), planned[c], c, planned_checksums) for c in sorted(planned)}
    index = Path(tmp) / "index.parquet"
    _structure_index(store, seals, index)
    record: dict[str, Any] = {"bucket": bucket, "release": name, "plan": p.ident}
    with atomic_dir(store.release_staging(name, p.ident, bucket)) as staging:
        record["chunks"] = _write_chunk_list(seals, staging / store.release_chunks(name).name)
        keys = _batches(con, f"SELECT checksum, chunk, length, release FROM {seqs} ORDER BY checksum", name=name, **bounds)
        record["keys"] = _write_buckets(keys, staging / store.release_keys(name).name, KEYS_SCHEMA)
        structures = _batches(con, f"SELECT * FROM read_parquet({duck.sql_path(index)}) ORDER BY checksum")
        record["structures"] = _write_buckets(structures, staging / store.release_structures(name).name, STORE_INDEX_SCHEMA)
        # only sequences with a structure can represent others
        texts = _batches(con, f"SELECT s.checksum, s.sequence FROM {seqs} s SEMI JOIN read_parquet({duck.sql_path(index)}) i ON i.checksum = s.checksum ORDER BY s.checksum", name=name, **bounds)
        record["sequences"] = _write_buckets(texts, staging / store.release_sequences(name).name, STORE_SEQUENCES_SCHEMA)
        if p.members.exists():
            resolved = _batches(con, f"SELECT * FROM read_parquet({duck.sql_path(p.members)}) WHERE checksum >= $lo AND checksum < $hi ORDER BY checksum", **bounds)
            record["members"] = _write_buckets(resolved, staging / store.release_members(name).name, MEMBERS_SCHEMA)
    record["staged"] = _staged_identities(store.release_staging(name, p.ident, bucket))
    return record


def _write_chunk_list(seals: Mapping[int, Seal], path: Path) -> dict:
    """Write a release's chunks and their files' SHA-256 and size (``chunks.parquet``);
    return its rows, SHA-256 and size (for the release record)."""
    order = sorted(seals)
    cols: dict[str, list] = {"chunk": order}
    for f in _FILES:
        cols[f"{f}_sha256"] = [seals[c].files[f]["sha256"] for c in order]
        cols[f"{f}_bytes"] = [seals[c].files[f]["bytes"] for c in order]
    write_table(pa.table(cols), path, RELEASE_CHUNKS_SCHEMA)
    return {"rows": len(order), **file_checksum(path)}


def release_chunk_files(store: StoreLayout, name: str, record: Mapping[str, Any] | None = None) -> Iterator[tuple[int, dict[str, dict]]]:
    """``(chunk, {file: {"sha256", "bytes"}})`` of every chunk a published release folded,
    ascending: from its ``chunks.parquet``, or from ``release.json`` for a release of
    foldatlas < 0.6 (``record``: the parsed release.json, when read already)."""
    rec = record if record is not None else json.loads(store.release_file(name).read_text())
    if isinstance(rec["chunks"], list):  # foldatlas < 0.6
        for c in rec["chunks"]:
            yield int(c["chunk"]), {f: dict(v) for f, v in c["files"].items()}
        return
    for batch in _chunk_list(store, name, rec).iter_batches(batch_size=1 << 16):
        cols = batch.to_pydict()
        for k, c in enumerate(cols["chunk"]):
            yield c, {f: {"sha256": cols[f"{f}_sha256"][k], "bytes": cols[f"{f}_bytes"][k]} for f in _FILES}


def _chunk_list(store: StoreLayout, name: str, rec: Mapping[str, Any]) -> pq.ParquetFile:
    """A published release's ``chunks.parquet``, open.

    Raises
    ------
    StaleOutputError
        It is missing, unreadable, or holds another number of chunks than the release
        record says (the store was changed after publication).
    """
    path = store.release_chunks(name)
    try:
        f = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise StaleOutputError(str(path), f"expected the chunk list of release {name}, found it unreadable ({exc}): check the store with foldatlas.store.verify_release") from None
    if f.metadata.num_rows != rec["chunks"]["rows"]:
        raise StaleOutputError(str(path), f"expected {rec['chunks']['rows']} chunks as published, found {f.metadata.num_rows}: the store was changed after publication (foldatlas.store.verify_release)")
    return f


def _release_chunk_numbers(store: StoreLayout, name: str, rec: Mapping[str, Any]) -> list[int]:
    """The chunks a published release folded, ascending."""
    if isinstance(rec["chunks"], list):
        return sorted(int(c["chunk"]) for c in rec["chunks"])
    return sorted(_chunk_list(store, name, rec).read(columns=["chunk"])["chunk"].to_pylist())


def _published_match(store: StoreLayout, m: dict, plan: PlannedRelease, chunks: list[int], sources: list[str], resolves: bool = False) -> dict | None:
    """The published release this plan duplicates: the same name with the same chunks and
    inputs (a rerun), or, for a plan without new chunks nor new members (``resolves``),
    the last release with its inputs.
    None when the plan is a new release that may be published.

    Raises
    ------
    StaleOutputError
        Another run published since this plan was made (the manifest's generation moved),
        or the name is published with other chunks or inputs (a published release is never
        written again).
    """
    # a record lists every chunk of its release (hundreds of MB at 10^5-10^6 chunks): read
    # one at a time, keeping only what is compared
    release = lambda name: json.loads(store.release_file(name).read_text())  # noqa: E731
    inputs_of = lambda rec: sorted({i["source_id"] for i in rec["inputs"]})  # noqa: E731
    names = [r["name"] for r in m["releases"]]
    rec = release(plan.name) if plan.name in names else None
    if rec is not None and _release_chunk_numbers(store, plan.name, rec) == sorted(chunks) and inputs_of(rec) == sources:
        return rec
    if not chunks and not resolves:
        for n in reversed(names):
            earlier = release(n)
            if inputs_of(earlier) == sources:
                return earlier
            del earlier
    if m["generation"] != plan.generation:
        raise StaleOutputError(
            str(store.manifest), f"the store gained releases since this run planned release {plan.name} (generation {plan.generation}, now {m['generation']}): "
            "plan again so that nothing is folded twice (snakemake --forcerun plan_chunks)",
        )  # fmt: skip
    if rec is not None:
        raise StaleOutputError(
            str(store.release_file(plan.name)), f"release {plan.name} is published already, with other inputs or chunks: a published release is never changed; "
            "choose another store.release (or leave it empty for the next number)",
        )  # fmt: skip
    return None


def _release_keys(sequences: str | os.PathLike[str], name: str) -> pa.Table:
    """``checksum, chunk, length, release`` of the sequences this release folds, by checksum
    (not its members: they point at their representative's chunk)."""
    return _release_rows(sequences, name, "checksum, chunk, length, release")


def _release_rows(sequences: str | os.PathLike[str], name: str, columns: str) -> pa.Table:
    con = duck.connect()
    t = con.sql(
        f"SELECT {columns} FROM read_parquet({duck.sql_path(sequences)}) WHERE release = ? AND representative IS NULL ORDER BY checksum", params=[name]
    ).arrow().read_all()
    con.close()
    return t


def _batches(con: Any, sql: str, **params: object) -> Iterator[pa.RecordBatch]:
    """The result of ``sql`` (named ``$params``) streamed as Arrow record batches."""
    yield from con.sql(sql, params=params or None).to_arrow_reader(1 << 17)


def _planned_digests(con: Any, seqs: str, chunks: Sequence[int], **params: object) -> dict[int, tuple[int, str]]:
    """For every chunk of ``chunks``: how many of the release's rows (``seqs``, a SQL
    relation of ``chunk, checksum``, with named ``params``) the plan put into it, and
    :func:`~foldatlas.seal.checksums_digest` of their checksums. The rows come as one
    stream sorted by chunk and checksum (DuckDB spills the sort under its limit; an
    ordered ``string_agg`` per chunk cannot spill: out of memory at 10^7 rows in 0.5 GB)
    and each chunk's digest is updated batch by batch, holding one batch. A chunk
    without rows gets ``(0, digest of none)``: its predictions must be empty too.

    Raises
    ------
    InternalError
        A sequence of the release is planned into a chunk that is not the release's.
    """
    wanted = set(chunks)
    out: dict[int, tuple[int, str]] = {}
    current, n, digest = -1, 0, hashlib.sha256()
    for batch in _batches(con, f"SELECT chunk, checksum FROM {seqs} ORDER BY chunk, checksum", **params):
        numbers = batch.column("chunk").to_numpy(zero_copy_only=False)
        keys = batch.column("checksum").to_pylist()
        starts = [0, *(np.flatnonzero(numbers[1:] != numbers[:-1]) + 1).tolist()] if len(numbers) else []
        for start, end in zip(starts, [*starts[1:], len(numbers)]):
            if int(numbers[start]) != current:
                if current in wanted:
                    out[current] = (n, digest.hexdigest())
                current, n, digest = int(numbers[start]), 0, hashlib.sha256()
                if current not in wanted:
                    raise InternalError(f"expected the release's sequences in its {len(wanted)} new chunks, found one planned into chunk {chunk_id(current)}")
            digest.update("".join(f"{k}\n" for k in keys[start:end]).encode())
            n += end - start
    if current in wanted:
        out[current] = (n, digest.hexdigest())
    return {c: out.get(c, (0, checksums_digest([]))) for c in chunks}


def _check_chunk(outputs: ChunkOutputs, planned: tuple[int, str], chunk: int, planned_checksums: Callable[[int], list[str]]) -> Seal:
    """A new chunk's seal (:mod:`foldatlas.seal`: its files' checksums, its structures'
    byte ranges), once its predictions are found to hold exactly the sequences planned
    into it (``planned``: their number and digest, :func:`_planned_digests`;
    ``planned_checksums`` gives them when they differ, to say how)."""
    for f in _FILES:
        if not getattr(outputs, f).exists():
            raise StaleOutputError(str(getattr(outputs, f)), f"missing: chunk {chunk_id(chunk)} of this release has not been folded")
    seal = chunk_seal(outputs)
    if (seal.sequences, seal.checksums_sha256) != planned:
        want, got = set(planned_checksums(chunk)), set(pq.read_table(outputs.predictions, columns=["checksum"])["checksum"].to_pylist())
        raise StaleOutputError(
            str(outputs.predictions), f"expected the {planned[0]} sequences planned into chunk {chunk_id(chunk)}, found {seal.sequences} "
            f"({len(want - got)} missing, {len(got - want)} not planned): fold the chunk again (delete its folder)",
        )  # fmt: skip
    return seal


#: Rows per row group of a bucket file: the files' bytes do not depend on how the rows
#: were batched on their way in.
_BUCKET_ROW_GROUP = 1 << 17


class _BucketFile:
    """One bucket file being written: its rows held until they fill a row group."""

    def __init__(self, folder: Path, bucket: str, schema: pa.Schema) -> None:
        self.bucket, self.path, self.rows = bucket, StoreLayout.bucket_file(folder, bucket), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.path, schema, compression="zstd")
        self.pending: list[pa.Table] = []

    def add(self, part: pa.Table) -> None:
        self.pending.append(part)
        self.rows += part.num_rows
        if sum(t.num_rows for t in self.pending) >= _BUCKET_ROW_GROUP:
            self._write(final=False)

    def _write(self, *, final: bool) -> None:
        held = pa.concat_tables(self.pending)
        while held.num_rows >= _BUCKET_ROW_GROUP or (final and held.num_rows):
            # one contiguous row group: its pages do not follow the incoming batches
            self.writer.write_table(held.slice(0, _BUCKET_ROW_GROUP).combine_chunks())
            held = held.slice(_BUCKET_ROW_GROUP)
        self.pending = [held] if held.num_rows else []

    def close(self) -> dict:
        """Finish the file; return its rows, SHA-256 and size."""
        if self.pending:
            self._write(final=True)
        self.writer.close()
        return {"rows": self.rows, **file_checksum(self.path)}


def _write_buckets(batches: Iterable[pa.RecordBatch] | pa.Table, folder: Path, schema: pa.Schema) -> dict:
    """Write rows sorted by checksum as one file per checksum bucket, holding at most one
    batch and one row group; return the rows, and per bucket its rows, SHA-256 and size
    (for the release record).

    Raises
    ------
    InternalError
        The rows are not sorted by checksum (a bucket would be written twice).
    """
    out: dict[str, dict] = {}
    current: _BucketFile | None = None
    total = 0
    try:
        for batch in batches.to_batches() if isinstance(batches, pa.Table) else batches:
            if batch.num_rows == 0:
                continue
            # where the prefix changes, found with Arrow kernels (no Python object per row)
            prefixes = pc.utf8_slice_codeunits(batch.column("checksum"), 0, BUCKET_DIGITS)
            n = len(prefixes)
            starts = [0, *(np.flatnonzero(pc.not_equal(prefixes.slice(1), prefixes.slice(0, n - 1)).to_numpy(zero_copy_only=False)) + 1).tolist()]
            for start, end in zip(starts, [*starts[1:], n]):
                here = prefixes[start].as_py()
                if current is None or here != current.bucket:
                    if current is not None and (here < current.bucket or here in out):
                        raise InternalError(f"{folder}: expected rows sorted by checksum, found bucket {here} after {current.bucket}")
                    if current is not None:
                        out[current.bucket] = current.close()
                    current = _BucketFile(folder, here, schema)
                current.add(pa.Table.from_batches([batch.slice(start, end - start)]).select(schema.names).cast(schema))
                total += end - start
    except BaseException:
        if current is not None:
            current.writer.close()
        raise
    if current is not None:
        out[current.bucket] = current.close()
    return {"rows": total, "buckets": out}


_BUCKETED = {"keys": StoreLayout.release_keys, "structures": StoreLayout.release_structures, "sequences": StoreLayout.release_sequences, "members": StoreLayout.release_members}


def _bucket_files(store: StoreLayout, name: str, what: str) -> list[Path]:
    """A published release's files of ``keys``, ``structures``, ``sequences`` or
    ``members``, as its record lists them (none where the record has no such entry:
    ``members`` without ``ingest.redundancy``, ``sequences`` before foldatlas 0.5)."""
    rec = json.loads(store.release_file(name).read_text())
    folder = _BUCKETED[what](store, name)
    return [StoreLayout.bucket_file(folder, b) for b in rec.get(what, {"buckets": {}})["buckets"]]


def published_files(store: StoreLayout, what: str) -> list[Path]:
    """Every published release's bucket files of one kind (see :func:`_bucket_files`)."""
    return [f for r in read_manifest(store)["releases"] for f in _bucket_files(store, r["name"], what)]


def _structure_index(store: StoreLayout, seals: Mapping[int, Seal], out: Path) -> int:
    """Write to ``out`` where each ok prediction's PDB member lies in its chunk's archive:
    the rows of each chunk's seal (checked against the archive's tar headers when it was
    sealed), one chunk at a time, in chunk order; return the rows.

    Raises
    ------
    StaleOutputError
        A seal's index holds another number of rows than the seal records.
    """
    n = 0
    pending: list[pa.Table] = []
    with pq.ParquetWriter(out, STORE_INDEX_SCHEMA) as writer:
        for c, seal in seals.items():
            path = store.chunk_outputs(chunk_id(c)).index
            rows = pq.read_table(path, schema=STORE_INDEX_SCHEMA)
            if rows.num_rows != seal.structures:
                raise StaleOutputError(str(path), f"expected the {seal.structures} structures its seal records, found {rows.num_rows} rows: delete it (the chunk is sealed again)")
            pending.append(rows)
            n += rows.num_rows
            # row groups of 2^17 rows, not one per chunk: the writer keeps every row
            # group's metadata until it closes (~13 KB per chunk)
            if sum(t.num_rows for t in pending) >= _BUCKET_ROW_GROUP:
                writer.write_table(pa.concat_tables(pending).combine_chunks(), row_group_size=_BUCKET_ROW_GROUP)
                pending = []
        if pending:
            writer.write_table(pa.concat_tables(pending).combine_chunks(), row_group_size=_BUCKET_ROW_GROUP)
    return n


def _release_counts(sequences: str | os.PathLike[str], name: str, inputs: str | os.PathLike[str]) -> dict:
    """Records, unique sequences, new, already folded and represented ones (members of
    ``ingest.redundancy``), and the GPU-hours saved (the chunk cost model's estimate for
    the sequences folded before and for the members, which are never folded; the
    members' part also on its own)."""
    con = duck.connect()
    unique, new, represented, est_new, est_saved, est_members = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE release = ? AND representative IS NULL), count(*) FILTER (WHERE representative IS NOT NULL),
                   coalesce(sum(est_seconds) FILTER (WHERE release = ? AND representative IS NULL), 0),
                   coalesce(sum(est_seconds) FILTER (WHERE release <> ? OR representative IS NOT NULL), 0),
                   coalesce(sum(est_seconds) FILTER (WHERE representative IS NOT NULL), 0)
            FROM read_parquet({duck.sql_path(sequences)})""",
        [name, name, name],
    ).fetchone()
    con.close()
    return {
        "records": sum(c.records for c in read_inputs(inputs)),
        "unique_sequences": unique,
        "new_sequences": new,
        "already_folded": unique - new - represented,
        "represented": represented,
        "est_gpu_hours_folded": round(est_new / 3600, 4),
        "est_gpu_hours_saved": round(est_saved / 3600, 4),
        "est_gpu_hours_saved_by_redundancy": round(est_members / 3600, 4),
    }


def _write_receipt(store: StoreLayout, receipt: str | os.PathLike[str], m: dict, name: str) -> None:
    write_json(receipt, {"release": name, "store": str(store.root), "fingerprint": store.fingerprint, "generation": m["generation"],
                         "releases": [r["name"] for r in m["releases"]]})  # fmt: skip


class _SharedKeys:
    """The checksums an atlas takes from each chunk it shares with other inputs, read
    from a Parquet file of ``chunk, checksum`` sorted by both, one chunk at a time in
    ascending chunk order; asked for an earlier chunk, it starts over. Each of the
    atlas's passes over its chunks (in chunk order) reads the file once and holds one
    chunk's checksums (as frozensets for every shared chunk at once: ~108 GB at 10^9)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = pq.ParquetFile(path)  # open once: each pass reads what the first one did
        self._restart()

    def _restart(self) -> None:
        self._batches = self._file.iter_batches(batch_size=1 << 16)
        self._buf: tuple[np.ndarray, pa.Array] | None = None
        self._pos = 0
        self.chunk, self.keys = -1, frozenset[str]()

    def get(self, chunk: int) -> frozenset[str]:
        """The checksums taken from ``chunk`` (empty when it has none in the file)."""
        if chunk == self.chunk:
            return self.keys
        if chunk < self.chunk:
            self._restart()
        parts: list[pa.Array] = []
        while True:
            if self._buf is None:
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._buf, self._pos = (batch.column("chunk").to_numpy(), batch.column("checksum")), 0
            numbers, keys = self._buf
            lo = self._pos + int(np.searchsorted(numbers[self._pos :], chunk, "left"))
            hi = self._pos + int(np.searchsorted(numbers[self._pos :], chunk, "right"))
            parts.append(keys.slice(lo, hi - lo))
            if hi < len(numbers):  # a later chunk starts in this batch
                self._pos = hi
                break
            self._buf = None
        self.chunk, self.keys = chunk, frozenset(k for part in parts for k in part.to_pylist())
        return self.keys


@dataclass(frozen=True)
class SharedChunkKeys(Collection[str]):
    """``ChunkOutputs.only`` of a shared chunk: its checksums the atlas takes, loaded
    when first asked for (see :class:`_SharedKeys`)."""

    chunk: int
    source: _SharedKeys

    def _keys(self) -> frozenset[str]:
        keys = self.source.get(self.chunk)
        if not keys:  # only chunks the run takes sequences from are shared
            raise InternalError(f"{self.source.path}: expected the checksums taken from chunk {chunk_id(self.chunk)}, found none")
        return keys

    def __contains__(self, checksum: object) -> bool:
        return checksum in self._keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def release_chunks(store: StoreLayout, sequences: str | os.PathLike[str], scratch_dir: str | os.PathLike[str] | None = None) -> list[ChunkOutputs]:
    """The store chunks a run's atlas reads: every chunk ``sequences.parquet`` points at,
    each with ``only`` set when the run needs only some of its sequences (a chunk of an
    earlier release, folded for other inputs too). A member's row points at its
    representative's chunk, and the atlas takes the representative's prediction.
    The checksums needed from shared chunks are kept in ``scratch_dir`` (emptied first;
    by default a hidden folder beside ``sequences``) and read one chunk at a time.

    Raises
    ------
    StaleOutputError
        A chunk is not listed by the release ``sequences.parquet`` names, or a file's size
        differs from its release record (a truncated or replaced file).
    """
    con = duck.connect()
    source = f"read_parquet({duck.sql_path(sequences)})"
    rows = con.execute(f"SELECT chunk, release, count(DISTINCT coalesce(representative, checksum)) FROM {source} GROUP BY chunk, release ORDER BY chunk").fetchall()
    con.close()
    # each release record read once, and its chunks looked up in a dict made once (made
    # per chunk, it was quadratic in the number of chunks)
    listed_in: dict[str, dict[int, dict]] = {}
    found = []
    for chunk, release, n in rows:
        if release not in listed_in:
            listed_in[release] = dict(release_chunk_files(store, release)) if store.release_file(release).exists() else {}
        ch = store.chunk_outputs(chunk_id(chunk))
        if chunk not in listed_in[release]:
            raise StaleOutputError(str(store.release_file(release)), f"expected chunk {chunk_id(chunk)} in release {release}, found it not published there: plan again (snakemake --forcerun plan_chunks)")
        _check_sizes(ch, listed_in[release][chunk])
        found.append((ch, n != pq.ParquetFile(ch.predictions).metadata.num_rows))
    partial = [ch.chunk for ch, shared in found if shared]
    shared_keys = _shared_keys(sequences, partial, Path(scratch_dir or Path(sequences).parent / ".release_chunks.scratch")) if partial else None
    return [ChunkOutputs(ch.chunk, ch.predictions, ch.embeddings, ch.structures, SharedChunkKeys(ch.chunk, shared_keys) if shared and shared_keys else None) for ch, shared in found]


def _shared_keys(sequences: str | os.PathLike[str], chunks: list[int], scratch_dir: Path) -> _SharedKeys:
    """The checksums needed from each of ``chunks``, in one scan of ``sequences``, sorted by
    DuckDB (1 GB, spilling) into ``scratch_dir``/shared_keys.parquet."""
    tmp = fresh_dir(scratch_dir)
    out = tmp / "shared_keys.parquet"
    with contextlib.closing(duck.connect(memory_gb=1.0, spill_dir=tmp / "spill", threads=2)) as con:
        con.execute(
            f"""COPY (SELECT DISTINCT chunk, coalesce(representative, checksum) AS checksum FROM read_parquet({duck.sql_path(sequences)})
                      WHERE chunk IN (SELECT unnest(?::BIGINT[])) ORDER BY chunk, checksum)
                TO {duck.sql_path(out)} (FORMAT parquet, ROW_GROUP_SIZE 131072)""",
            [chunks],
        )
    shutil.rmtree(tmp / "spill", ignore_errors=True)
    return _SharedKeys(out)


def _check_sizes(ch: ChunkOutputs, files: Mapping[str, Mapping[str, int]]) -> None:
    for f in _FILES:
        path = getattr(ch, f)
        size = path.stat().st_size if path.exists() else None
        if size != files[f]["bytes"]:
            raise StaleOutputError(str(path), f"expected {files[f]['bytes']} bytes as published, found {'no file' if size is None else size}: the store was changed after publication")


def verify_release(store: StoreLayout, name: str) -> list[str]:
    """Every problem found checking a published release against its records: the
    manifest's SHA-256 of ``release.json``, and the SHA-256 and size of every file it
    lists. Empty when the release is intact."""
    m = read_manifest(store)
    entry = {r["name"]: r for r in m["releases"]}.get(name)
    if entry is None:
        return [f"{store.manifest}: release {name} is not published"]
    problems = []
    if file_checksum(store.release_file(name))["sha256"] != entry["sha256"]:
        problems.append(f"{store.release_file(name)}: SHA-256 differs from the manifest's")
    rec = json.loads(store.release_file(name).read_text())
    for what, folder_of in _BUCKETED.items():
        folder = folder_of(store, name)
        for bucket, recorded in rec.get(what, {"buckets": {}})["buckets"].items():
            path = StoreLayout.bucket_file(folder, bucket)
            if not path.exists() or file_checksum(path)["sha256"] != recorded["sha256"]:
                problems.append(f"{path}: missing, or SHA-256 differs from the release record's")
    if isinstance(rec["chunks"], dict):  # chunks.parquet (foldatlas 0.6)
        path = store.release_chunks(name)
        if not path.exists() or file_checksum(path)["sha256"] != rec["chunks"]["sha256"]:
            problems.append(f"{path}: missing, or SHA-256 differs from the release record's")
    try:
        listed = list(release_chunk_files(store, name, rec))
    except (StaleOutputError, pa.ArrowException, KeyError) as exc:
        return [*problems, f"{store.release_chunks(name)}: its chunks cannot be read ({exc}), so their files were not checked"]
    for chunk, files in listed:
        ch = store.chunk_outputs(chunk_id(chunk))
        for f in _FILES:
            path = getattr(ch, f)
            if not path.exists() or file_checksum(path) != files[f]:
                problems.append(f"{path}: missing, or SHA-256 or size differs from the release record's")
    return problems


def release_history(store: StoreLayout) -> list[dict]:
    """Per published release: name, creation time, inputs and counts (for summary.json)."""
    out = []
    for r in read_manifest(store)["releases"]:
        rec = json.loads(store.release_file(r["name"]).read_text())
        out.append({"name": rec["name"], "created": rec["created"], "inputs": [i["source_id"] for i in rec["inputs"]], "chunks": len(rec["chunks"]) if isinstance(rec["chunks"], list) else rec["chunks"]["rows"], **rec["counts"]})
    return out



def atlas_sources(store: StoreLayout, sequences: str | os.PathLike[str], receipt: str | os.PathLike[str], scratch_dir: str | os.PathLike[str] | None = None) -> dict:
    """What :func:`foldatlas.atlas.assemble_atlas` takes from the store for a run:
    ``chunks`` (:func:`release_chunks`, keeping what it needs in ``scratch_dir``), the
    run's ``release`` (from its receipt) and ``releases`` (:func:`release_history`)."""
    release = json.loads(Path(receipt).read_text())["release"]
    return {"chunks": release_chunks(store, sequences, scratch_dir), "release": release, "releases": release_history(store)}


def bucket_sources(store: StoreLayout, sequences: str | os.PathLike[str], bucket: str, scratch_dir: str | os.PathLike[str]) -> dict:
    """What :func:`foldatlas.atlas.assemble_bucket` takes from the store for one checksum
    bucket of a run's atlas: ``sequences``, the rows of the run's ``sequences.parquet``
    whose prediction (a member's: its representative's) is in ``bucket`` (their checksum,
    chunk, release and representative, copied into ``scratch_dir``, emptied first; the
    whole file for :data:`WHOLE`), and ``chunks``, the
    store chunks that hold those predictions (:func:`release_chunks`; a chunk of a
    release planned without buckets holds every bucket's, and each bucket job takes its
    own from it), and for an empty bucket a ``template`` chunk (the schema of its files)."""
    if bucket == WHOLE:
        return {"sequences": Path(sequences), "chunks": release_chunks(store, sequences, scratch_dir)}
    tmp = fresh_dir(scratch_dir)
    mine = tmp / "sequences.parquet"
    src, cols = f"read_parquet({duck.sql_path(sequences)})", "checksum, chunk, release, representative"
    with contextlib.closing(duck.connect(memory_gb=1.0, spill_dir=tmp / "spill", threads=2)) as con:
        # the bucket's own sequences by a checksum range (row groups of a plan sorted by
        # bucket are skipped by their statistics), then the members of other buckets
        # whose representative is in this one (a scan of the mostly null representative
        # column); the few columns the assembly reads, not the sequences themselves
        con.execute(
            f"""COPY (SELECT {cols} FROM {src} WHERE {bucket_where('checksum', bucket)} AND representative IS NULL
                      UNION ALL SELECT {cols} FROM {src} WHERE {bucket_where('representative', bucket)})
                TO {duck.sql_path(mine)} (FORMAT parquet)"""
        )
    chunks = release_chunks(store, mine, tmp / "release_chunks")
    first = None if chunks else _first_chunk(sequences)
    return {"sequences": mine, "chunks": chunks, "template": None if first is None else store.chunk_outputs(chunk_id(first))}


def _first_chunk(sequences: str | os.PathLike[str]) -> int | None:
    """The chunk of the first row of ``sequences.parquet`` (None when it has none)."""
    f = pq.ParquetFile(sequences)
    for batch in f.iter_batches(batch_size=1, columns=["chunk"]):
        return int(batch.column(0)[0].as_py())
    return None


def check_unpublished(store: StoreLayout, chunk: str) -> None:
    """A fold job may write chunk ``chunk`` only while no published release holds it (its
    id is not below the manifest's ``next_chunk``): a plan overtaken by another run, or
    resumed after it, must never overwrite a published chunk.

    Raises
    ------
    StaleOutputError
        The chunk is published; the message says to plan again.
    """
    m = read_manifest(store)
    if parse_chunk_id(chunk) < int(m["next_chunk"]):
        raise StaleOutputError(
            str(store.chunk_outputs(chunk).predictions), f"chunk {chunk} belongs to a published release of the store (chunks up to {int(m['next_chunk']) - 1} are): "
            "this run's plan is older than the store's last release; plan again (snakemake --forcerun plan_chunks)",
        )  # fmt: skip
