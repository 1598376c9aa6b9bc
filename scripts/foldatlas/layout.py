"""Every path and file name of the results tree, built from one root (``output.root``).

The rules declare their outputs from a :class:`Layout`, the rule scripts pass those
paths on, and the library names the files it makes inside a folder with the constants
here; nothing else spells out a path of the results tree::

    <root>/
      ingest/parts/<source>.parquet      one validated part per input file (temporary)
      ingest/parts/<source>.count.json   the file's independent count (temporary)
      ingest/inputs.json                 every input file: bytes, text bytes, records, SHA-256
      ingest/records.parquet             one row per input record
      ingest/sequences.parquet           one row per unique sequence
      chunks/chunk_NNNNNN.parquet        the new sequences of one fold job; plan.tsv, release.json
      fold/partial/chunk_NNNNNN/         committed segments of an unfinished fold job
      release.json                       the release this run's atlas is made from (its receipt)
      store/                             the store (store.path; see StoreLayout)
      atlas/                             metadata, embeddings, plddt (one file per checksum bucket each),
                                         structures/<bucket>/, structures/index.parquet/, summary, config, accounting
      atlas_parts/<bucket>.json          what one assemble_bucket job did, and its predictions
      atlas_parts/<bucket>.accounting.json  what one check_bucket job counted
      report/atlas_report.html
      foldseek/, mmseqs/                 annotation (foldseek/cascade/: the structural clustering's jobs)
      logs/, benchmarks/                 one log and one benchmark file per job
      scratch/<step>/                    working space of one step, emptied when it starts
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HIGHCONF",
    "REPRESENTATIVES",
    "ALL",
    "COLLECTIONS",
    "CHUNK_ID_DIGITS",
    "CHUNK_ID_PATTERN",
    "BUCKET_DIGITS",
    "chunk_id",
    "parse_chunk_id",
    "ChunkOutputs",
    "AtlasOutputs",
    "Layout",
    "foldseek_db_prefix",
    "target_db_prefix",
    "shard_name",
    "bucket_shards",
    "foldcomp_db",
    "chunk_file_name",
    "PLAN_FILE",
    "RELEASE_FILE",
    "MEMBERS_FILE",
    "StoreLayout",
    "fresh_dir",
]

#: Collection of the high-confidence structures (shard prefix, Foldcomp and foldseek DB name).
HIGHCONF = "highconf"
#: Collection of every folded structure (``atlas.all_structures``).
ALL = "all"
COLLECTIONS = (HIGHCONF, ALL)
#: The structural clustering's input (foldseek database and table name, :meth:`Layout.foldseek_representatives`).
REPRESENTATIVES = "representatives"
#: A segment's folder in the split folder of the segmented sequence clustering.
SEGMENT = "segment_{}"
#: Least digits of a chunk id in file names (``chunk_000042``); numbers from 10^6 on
#: have more (``chunk_1000000``), so ids never run out.
CHUNK_ID_DIGITS = 6
#: Regular expression of a chunk id, exactly what :func:`chunk_id` writes: six digits
#: (zero-padded, the only form before 0.5) or more without a leading zero. One number,
#: one id: ``0000042`` is no id. ASCII digits only. The ``{chunk}`` wildcard's constraint,
#: hence no open repeat (``{6,}``): Snakemake reads only ``{m}`` and ``{m,n}`` inside one.
CHUNK_ID_PATTERN = rf"[0-9]{{{CHUNK_ID_DIGITS}}}|[1-9][0-9]{{{CHUNK_ID_DIGITS}}}[0-9]*"
#: Hex digits of the checksum prefix that buckets the store's keys and index (256 buckets).
BUCKET_DIGITS = 2


#: The table of chunks (chunk, sequences, residues, lengths, estimate) in the chunks folder.
PLAN_FILE = "plan.tsv"
#: The release a plan is for (name, first chunk, the store generation it was planned
#: against), in the chunks folder; and, in the store, a published release's record.
RELEASE_FILE = "release.json"
#: In the chunks folder: the members the plan resolved to a representative
#: (``ingest.redundancy``; absent otherwise), published with the release.
MEMBERS_FILE = "members.parquet"


def chunk_id(chunk: int) -> str:
    """The id of chunk number ``chunk`` as it appears in file names: ``000042``,
    ``1000000`` (at least :data:`CHUNK_ID_DIGITS` digits; compare numbers, not ids)."""
    if chunk < 0:
        raise ValueError(f"expected a chunk number >= 0, got {chunk}")
    return f"{chunk:0{CHUNK_ID_DIGITS}d}"


def parse_chunk_id(chunk: str) -> int:
    """The number of chunk id ``chunk`` (the inverse of :func:`chunk_id`).

    Raises
    ------
    ValueError
        When ``chunk`` is not an id :func:`chunk_id` writes (``42``, ``0000042``, ``x1``).
    """
    if re.fullmatch(CHUNK_ID_PATTERN, chunk) is None:
        raise ValueError(f"expected a chunk id ({CHUNK_ID_DIGITS} digits or more, e.g. 000042 or 1000000), found {chunk!r}")
    return int(chunk)


@dataclass(frozen=True)
class ChunkOutputs:
    """The final outputs of one fold job."""

    chunk: int
    predictions: Path
    embeddings: Path
    structures: Path
    #: The checksums an atlas takes from this chunk; None: all (a chunk of an earlier
    #: release may hold sequences of other inputs too).
    only: Collection[str] | None = None

    @property
    def index(self) -> Path:
        """``index.parquet``: the chunk's seal (its structures' byte ranges and its files'
        SHA-256, :mod:`foldatlas.seal`), written last by the fold job."""
        return self.predictions.parent / "index.parquet"


@dataclass(frozen=True)
class AtlasOutputs:
    """The atlas tables and archives; ``root`` is the folder archive paths are relative to.

    Each table (``metadata``, ``embeddings``, ``plddt``, ``index``) is a Parquet dataset:
    a folder of one file per checksum bucket (:meth:`part`; one file, ``all.parquet``,
    when the atlas is not split), which DuckDB, polars and pyarrow read as one table by
    the folder's name. Each bucket's shards are in their own folder of ``structures``
    (:meth:`shards`)."""

    root: Path
    metadata: Path
    embeddings: Path
    plddt: Path
    structures: Path
    summary: Path

    @property
    def index(self) -> Path:
        """``structures/index.parquet/``: where each archived structure lives."""
        return self.structures / "index.parquet"

    @property
    def tables(self) -> tuple[Path, ...]:
        """Every table's dataset folder (the index's too)."""
        return (self.metadata, self.embeddings, self.plddt, self.index)

    @staticmethod
    def part(table: Path, bucket: str) -> Path:
        """One checksum bucket's file of a table's dataset folder: ``<table>/<bucket>.parquet``."""
        return table / f"{bucket}.parquet"

    def shards(self, bucket: str) -> Path:
        """One checksum bucket's structures: its shards and Foldcomp database,
        ``structures/<bucket>/``."""
        return self.structures / bucket

    @property
    def bins(self) -> Path:
        """``bins/``: every structure again, in shards per ESM Atlas bin (``atlas.bins``)."""
        return self.root / "bins"

    @property
    def bins_index(self) -> Path:
        """``bins/index.parquet/``: where each structure lives in the bin shards."""
        return self.bins / "index.parquet"

    def bin_shards(self, bucket: str) -> Path:
        """One checksum bucket's bin shards, ``bins/<bucket>/<bin>_NNNNNN.tar``."""
        return self.bins / bucket

    def bucket_folders(self, buckets: Sequence[str], *, bins: bool) -> list[tuple[Path, set[str]]]:
        """Each folder that holds one file or folder per checksum bucket, with the names
        ``buckets`` give it there: every table's dataset folder and ``structures/``
        (beside its index), and with ``bins`` the bin shards' folders likewise."""
        folders = [*((t, {self.part(t, b).name for b in buckets}) for t in self.tables), (self.structures, {self.index.name, *buckets})]
        if bins:
            folders += [(self.bins_index, {self.part(self.bins_index, b).name for b in buckets}), (self.bins, {self.bins_index.name, *buckets})]
        return folders

    @property
    def config(self) -> Path:
        """``config.yaml``: the resolved configuration of the run that made the atlas."""
        return self.root / "config.yaml"

    @property
    def accounting(self) -> Path:
        """``accounting.json``: written only when every input record is accounted for."""
        return self.root / "accounting.json"


class StoreLayout:
    """Paths of one model fingerprint's part of a store::

        <store>/<fingerprint>/
          key.json                         the settings the fingerprint stands for
          manifest.json                    the published releases (replaced atomically)
          chunks/chunk_NNNNNN/             one fold job's outputs, written once, and
                                           their seal (index.parquet, foldatlas.seal)
          releases/<name>/release.json     a published release: inputs, counts and the
                                           SHA-256 of every file
          releases/<name>/chunks.parquet   its chunks and their files' SHA-256
          releases/<name>/keys/HH.parquet  checksum -> chunk of each sequence it folded
          releases/<name>/structures/HH.parquet
                                           checksum -> archive, byte range (append-only:
                                           each release adds its own)
          publishing/<name>.<plan>/<bucket>/
                                           a release being published, one checksum bucket
                                           of its plan per publish_bucket job

    ``HH`` is the checksum's first :data:`BUCKET_DIGITS` hex digits: a lookup reads one
    bucket of each release.
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.dir = self.root / fingerprint

    def __repr__(self) -> str:
        return f"StoreLayout({str(self.root)!r}, {self.fingerprint!r})"

    @property
    def key(self) -> Path:
        return self.dir / "key.json"

    @property
    def manifest(self) -> Path:
        return self.dir / "manifest.json"

    @classmethod
    def of_chunk_outputs(cls, predictions: str | os.PathLike[str]) -> StoreLayout:
        """The store part a fold job's ``predictions`` path (:meth:`chunk_outputs`) lies in."""
        folder = Path(predictions).parent
        if folder.parent.name != "chunks" or not folder.name.startswith("chunk_"):
            raise ValueError(f"expected <store>/<fingerprint>/chunks/chunk_N/{Path(predictions).name}, found {predictions}")
        return cls(folder.parents[2], folder.parents[1].name)

    def chunk_outputs(self, chunk: str) -> ChunkOutputs:
        folder = self.dir / "chunks" / f"chunk_{chunk}"
        number = parse_chunk_id(chunk) if re.fullmatch(CHUNK_ID_PATTERN, chunk) else -1
        return ChunkOutputs(number, folder / "predictions.parquet", folder / "embeddings.parquet", folder / "structures.tar")

    def chunk_numbers(self) -> list[int]:
        """The numbers of the chunk folders in this part of the store, ascending as
        numbers (``chunk_1000000`` after ``chunk_999999``); other names are ignored."""
        found = (p.name.removeprefix("chunk_") for p in (self.dir / "chunks").glob("chunk_*"))
        return sorted(int(c) for c in found if re.fullmatch(CHUNK_ID_PATTERN, c))

    def release_dir(self, name: str) -> Path:
        return self.dir / "releases" / name

    def release_file(self, name: str) -> Path:
        return self.release_dir(name) / RELEASE_FILE

    def release_chunks(self, name: str) -> Path:
        """A release's chunks and their files' checksums (``chunks.parquet``; before
        foldatlas 0.6 they were listed in ``release.json``)."""
        return self.release_dir(name) / "chunks.parquet"

    def release_keys(self, name: str) -> Path:
        """Folder of a release's keys, one file per bucket (:meth:`bucket_file`)."""
        return self.release_dir(name) / "keys"

    def release_structures(self, name: str) -> Path:
        """Folder of a release's structure index (where each structure it folded lies in
        the chunk archives), one file per bucket."""
        return self.release_dir(name) / "structures"

    def release_sequences(self, name: str) -> Path:
        """Folder of the text of the sequences a release folded, one file per bucket
        (what ``ingest.redundancy`` aligns later releases' new sequences to)."""
        return self.release_dir(name) / "sequences"

    def release_members(self, name: str) -> Path:
        """Folder of the members a release resolved to a representative
        (``ingest.redundancy``), one file per bucket."""
        return self.release_dir(name) / "members"

    def release_staging(self, name: str, plan: str, bucket: str = "") -> Path:
        """Where one ``publish_bucket`` job stages its bucket's files of release ``name``
        as planned by the plan ``plan`` (an id of the planned release.json: two runs that
        planned the same name never share it): ``publishing/<name>.<plan>/<bucket>/``,
        beside the releases on the same file system, so ``publish_release`` links them
        into the release folder without copying. Without ``bucket``: the plan's folder."""
        folder = self.dir / "publishing" / f"{name}.{plan}"
        return folder / bucket if bucket else folder

    @staticmethod
    def bucket_file(folder: Path, bucket: str) -> Path:
        """The file of one bucket (the first :data:`BUCKET_DIGITS` hex digits of the
        checksum) in a bucketed folder: ``3f.parquet`` (a glob of the folder reads all)."""
        return folder / f"{bucket}.parquet"


class Layout:
    """Paths of one results tree. Ids are strings, so Snakemake wildcards (``"{chunk}"``)
    give path patterns and real ids (:func:`chunk_id`) give paths."""

    def __init__(self, root: str | os.PathLike[str] = "results", store: str | os.PathLike[str] = "") -> None:
        self.root = Path(root)
        #: The store's folder (``store.path``; empty: ``store`` inside the results root).
        self.store_root = Path(store) if str(store) else self.root / "store"

    @classmethod
    def from_config(cls, output: Mapping[str, object], store: Mapping[str, object] | None = None) -> Layout:
        """The layout of the ``output`` (and ``store``) config sections."""
        return cls(str(output["root"]), str((store or {}).get("path", "")))

    def store(self, fingerprint: str) -> StoreLayout:
        """The part of the store that holds one model fingerprint's predictions."""
        return StoreLayout(self.store_root, fingerprint)

    def __repr__(self) -> str:
        return f"Layout({str(self.root)!r})"

    # ingest
    def ingest_part(self, source: str) -> Path:
        return self.root / "ingest" / "parts" / f"{source}.parquet"

    def ingest_bucket_parts(self, source: str) -> Path:
        """``ingest.bucket_digits`` > 0: one input file's validated records, a folder of
        one part per checksum bucket (:func:`foldatlas.ingest.write_bucket_parts`)."""
        return self.root / "ingest" / "parts" / f"{source}.buckets"

    def planned_bucket(self, bucket: str) -> Path:
        """What one ``plan_bucket`` job planned (:mod:`foldatlas.bucket_plans`): its
        bucket's records, sequences and chunks, numbered as if it were the only bucket; a temporary folder."""
        return self.root / "ingest" / "buckets" / bucket

    def ingest_count(self, source: str) -> Path:
        """The independent count of one input file (:mod:`foldatlas.inputs`)."""
        return self.root / "ingest" / "parts" / f"{source}.count.json"

    @property
    def inputs(self) -> Path:
        """Every input file's independent count, gathered (:mod:`foldatlas.inputs`)."""
        return self.root / "ingest" / "inputs.json"

    @property
    def records(self) -> Path:
        return self.root / "ingest" / "records.parquet"

    @property
    def sequences(self) -> Path:
        return self.root / "ingest" / "sequences.parquet"

    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    def chunk_file(self, chunk: str) -> Path:
        return self.chunks / chunk_file_name(chunk)

    @property
    def plan(self) -> Path:
        return self.chunks / PLAN_FILE

    @property
    def planned_release(self) -> Path:
        """The release the chunks are planned for (:data:`RELEASE_FILE` in the chunks folder)."""
        return self.chunks / RELEASE_FILE

    @property
    def release(self) -> Path:
        """The receipt of the published release this run's atlas is made from."""
        return self.root / "release.json"

    def atlas_part(self, bucket: str) -> Path:
        """What one ``assemble_bucket`` job reports to the finish (its models, counts,
        Foldcomp figures and chunks): a temporary JSON."""
        return self.root / "atlas_parts" / f"{bucket}.json"

    def atlas_predictions(self, bucket: str) -> Path:
        """The predictions one ``assemble_bucket`` job took, joined with its filter's
        outcome: the metadata jobs read them (kept: with members, every metadata job
        reads every bucket's)."""
        return self.root / "atlas_parts" / f"{bucket}.predictions.parquet"

    def bucket_accounting(self, bucket: str) -> Path:
        """What one ``check_bucket`` job counted in its checksum bucket of the finished
        atlas (:func:`foldatlas.accounting.check_bucket`), for ``check_accounting`` to add up."""
        return self.root / "atlas_parts" / f"{bucket}.accounting.json"

    def release_part(self, bucket: str) -> Path:
        """What one ``publish_bucket`` job staged in the store for its checksum bucket."""
        return self.root / "release_parts" / f"{bucket}.json"

    # fold (the outputs of a fold job go to the store: StoreLayout.chunk_outputs)
    def partial(self, chunk: str) -> Path:
        return self.root / "fold" / "partial" / f"chunk_{chunk}"

    def fold_package(self, package: str) -> Path:
        """Receipt of a fold package (``fold.chunks_per_job`` > 1): the chunks one job
        folded into the store, named after its first chunk."""
        return self.root / "fold" / "packages" / f"package_{package}.json"

    # atlas
    @property
    def atlas(self) -> AtlasOutputs:
        a = self.root / "atlas"
        return AtlasOutputs(a, a / "metadata.parquet", a / "embeddings.parquet", a / "plddt.parquet", a / "structures", a / "summary.json")

    @property
    def accounting(self) -> Path:
        return self.atlas.accounting

    @property
    def report(self) -> Path:
        return self.root / "report" / "atlas_report.html"

    # annotation
    @property
    def foldseek_db(self) -> Path:
        """Folder of the foldseek databases of the high-confidence structures: one folder
        per checksum bucket of the atlas (:meth:`foldseek_bucket_db`)."""
        return self.root / "foldseek" / "db"

    def foldseek_bucket_db(self, bucket: str) -> Path:
        """One bucket's foldseek databases, one per shard: ``db/<bucket>/highconf_NNNNNN/highconf``."""
        return self.foldseek_db / bucket

    @property
    def foldseek_bins_db(self) -> Path:
        """Folder of the foldseek databases per ESM Atlas bin (``atlas.bins``): one folder
        per checksum bucket (:meth:`foldseek_bucket_bins_db`)."""
        return self.root / "foldseek" / "bins"

    def foldseek_bucket_bins_db(self, bucket: str) -> Path:
        """One bucket's foldseek databases, one per bin: ``bins/<bucket>/<bin>/<bin>``."""
        return self.foldseek_bins_db / bucket

    def foldseek_target_db(self, target: str) -> Path:
        """Folder of the foldseek database made from search target number ``target``
        (``foldseek.search.targets``) when it is structures, not a database."""
        return self.root / "foldseek" / "targets" / target

    @property
    def foldseek_clusters(self) -> Path:
        return self.root / "foldseek" / "clusters.parquet"

    @property
    def foldseek_representatives(self) -> Path:
        """What the structural clustering clusters: the best structure of each sequence
        cluster, as one foldseek database (``representatives/representatives``) and a
        table of every high-confidence structure with its representative
        (``representatives.parquet``)."""
        return self.root / "foldseek" / "representatives"

    @property
    def foldseek_cascade(self) -> Path:
        """The structural clustering split into jobs (``foldseek.cluster.shards`` > 1,
        :mod:`foldatlas.cascade`): ``linclust/``, ``round_<r>/search_<k>/``,
        ``round_<r>/clusters/``."""
        return self.root / "foldseek" / "cascade"

    @property
    def cascade_linclust(self) -> Path:
        return self.foldseek_cascade / "linclust"

    def cascade_search(self, round_: str, shard: str) -> Path:
        return self.foldseek_cascade / f"round_{round_}" / f"search_{shard}"

    def cascade_round(self, round_: str) -> Path:
        return self.foldseek_cascade / f"round_{round_}" / "clusters"

    @property
    def foldseek_hits(self) -> Path:
        """The search hits: a Parquet dataset folder of one file per checksum bucket of
        the atlas (:meth:`foldseek_hits_part`), read as one table by its name."""
        return self.root / "foldseek" / "hits.parquet"

    def foldseek_hits_part(self, bucket: str) -> Path:
        """One bucket's search hits, ``hits.parquet/<bucket>.parquet``."""
        return AtlasOutputs.part(self.foldseek_hits, bucket)

    @property
    def mmseqs_clusters(self) -> Path:
        return self.root / "mmseqs" / "clusters.parquet"

    @property
    def mmseqs_segments(self) -> Path:
        """The sequence clustering split into jobs (``mmseqs.segments`` > 1,
        :mod:`foldatlas.segments`): ``split/segment_<s>/``, ``round_<r>/`` and
        ``round_<r>.parquet``, ``assign_<r>_<s>/`` and ``assign_<r>_<s>.parquet``."""
        return self.root / "mmseqs" / "segments"

    @property
    def segments_split(self) -> Path:
        return self.mmseqs_segments / "split"

    def segment(self, segment: str) -> Path:
        """One segment's folder, written by the split job with the others."""
        return self.segments_split / SEGMENT.format(segment)

    def segment_round(self, round_: str) -> Path:
        """A round's representatives (read by its assignments)."""
        return self.mmseqs_segments / f"round_{round_}"

    def segment_round_pairs(self, round_: str) -> Path:
        """A round's clusters (read by the merge)."""
        return self.mmseqs_segments / f"round_{round_}.parquet"

    def segment_assign(self, round_: str, segment: str) -> Path:
        """What an assignment left of its segment (read by the next round's job)."""
        return self.mmseqs_segments / f"assign_{round_}_{segment}"

    def segment_assign_pairs(self, round_: str, segment: str) -> Path:
        """An assignment's pairs (read by the merge)."""
        return self.mmseqs_segments / f"assign_{round_}_{segment}.parquet"

    # bookkeeping
    def log(self, rule: str, wildcard: str | None = None) -> Path:
        return self.root / "logs" / (f"{rule}.log" if wildcard is None else f"{rule}/{wildcard}.log")

    def benchmark(self, rule: str, wildcard: str | None = None) -> Path:
        return self.root / "benchmarks" / (f"{rule}.tsv" if wildcard is None else f"{rule}/{wildcard}.tsv")

    def scratch(self, step: str) -> Path:
        """Working space of one step (DuckDB databases, spill files); the step empties it
        when it starts, so a killed run leaves nothing behind for long."""
        return self.root / "scratch" / step


def target_db_prefix(db_folder: str | os.PathLike[str]) -> Path:
    """The database prefix foldseek reads inside a search target's database folder
    (:meth:`Layout.foldseek_target_db`)."""
    return Path(db_folder) / "db"


def foldseek_db_prefix(db_folder: str | os.PathLike[str]) -> Path:
    """The database prefix foldseek reads, inside a foldseek database folder."""
    return Path(db_folder) / HIGHCONF


def shard_name(collection: str, number: int) -> str:
    """File name of shard ``number`` of a collection: ``highconf_000000.tar`` (an
    uncompressed tar of gzip-compressed members)."""
    return f"{collection}_{number:06d}.tar"


def bucket_shards(folder: str | os.PathLike[str], collection: str = HIGHCONF) -> list[Path]:
    """The shards of one collection in one bucket's structures folder
    (``atlas/structures/<bucket>/``), in order (:func:`shard_name`)."""
    return sorted(Path(folder).glob(f"{collection}_*.tar"))


def foldcomp_db(structures: str | os.PathLike[str], collection: str = HIGHCONF) -> Path:
    """The Foldcomp database of a collection inside a structures folder."""
    return Path(structures) / "foldcomp" / collection


def chunk_file_name(chunk: str) -> str:
    """File name of a chunk in the chunks folder: ``chunk_000042.parquet``."""
    return f"chunk_{chunk}.parquet"


def fresh_dir(path: str | os.PathLike[str]) -> Path:
    """Empty ``path`` (whatever a killed run left there) and create it; return it."""
    p = Path(path)
    if p.is_symlink() and p.is_dir():  # e.g. scratch on a node's local disk: empty what it points to
        for child in p.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return p
    if p.is_symlink():  # pointing at nothing
        p.unlink()
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True)
    return p
