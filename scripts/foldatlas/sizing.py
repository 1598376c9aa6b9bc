"""Memory and runtime requests of the annotation jobs, from the size of their inputs.

Each request is a small formula over counts read cheaply before the job runs (one
integer column of a Parquet file, a foldseek index, file sizes), so a Slurm job asks for what its input needs
instead of a fixed 4-16 GB. The constants and where each comes from (README, "Annotation
resources"):

- mmseqs ``linclust`` keeps a table of ``--kmer-per-seq`` k-mers per sequence, 16 bytes
  each at most (MMseqs2's packed ``KmerPosition``: k-mer 8, sequence id 4, position 2, and
  in some steps the length 2), plus the sequence database (1 byte per residue);
- foldseek keeps 8 bytes per residue of a database it searches or clusters (6 of
  C-alpha coordinates, 1 of 3Di, 1 of amino acid: foldseek's README, "Memory
  requirements"); its prefilter (MMseqs2's, README "Memory Requirements") indexes the
  target database in ``7 x residues`` bytes, split into passes, and refuses to start
  unless its own estimate (``Prefiltering::estimateMemoryConsumption``) of what no split
  reduces fits 90% of the split limit: two tables of ``8 x 20^6`` bytes (k-mer index and
  extended substitution matrix, k = 6 over the 20 letters 3Di k-mers use; 1.02 GB however
  small the database) and 42 bytes per target sequence (:func:`prefilter_floor_mb`;
  measured: 2x10^5 structures ran at 1150M and stopped at 1100M, bench/RESULTS.md);
  ``cluster`` first runs the same k-mer table as linclust (``--kmer-per-seq``, 300);
- a job never asks for more than the section's ``max_mem_mb``, and a foldseek job never
  for less than its prefilter's floor (a cap below it is a configuration error: raised
  when a search's request is computed, and by the cluster job itself once it knows its
  representatives, :func:`check_prefilter_floor`); mmseqs and foldseek are always given ``--split-memory-limit``
  (:func:`split_memory_limit`) and work in several passes instead of outgrowing it. The
  databases are memory-mapped (linclust's sequences; foldseek's C-alpha, 3Di and amino
  acids): page cache, which the kernel reclaims within the job's cgroup limit, so the
  split limit does not subtract them;
- beyond the split k-mer table, linclust's later steps (``rescorediagonal``, ``clust``,
  ``mergeclusters``, ``createtsv``) hold about 95 bytes per sequence of anonymous memory
  that no option bounds (bench/RESULTS.md): about 66 GB for 7x10^8 sequences. A job
  whose sequences need more than ``mmseqs.max_mem_mb`` for that is refused when its
  request is computed (:func:`linclust_floor_mb`), naming the ``mmseqs.segments`` that
  would fit: the segmented clustering's jobs (:mod:`foldatlas.segments`) hold at most
  about ``2/P`` of the sequences each, sized by their folders' ``counts.json``;
- foldseek cluster's later steps (``clust``, ``mergeclusters``, ``createtsv``) hold
  about 150 bytes per structure (bench/RESULTS.md): ``CLUST_BYTES_PER_STRUCTURE`` sizes
  a cascade's ``clust`` and merge jobs, which run nothing else of foldseek's;
- the structural clustering's jobs (``foldseek_representatives``, the cascade's) are
  sized by the representatives' database, exact; a cascade's search job takes
  ``1/foldseek.cluster.shards`` of the cluster's time (``share``).

Runtimes are ``RUNTIME_BASE_MIN`` plus the work at a per-thread rate measured on this
project's benchmark machine (bench/annotate_sizes.py, bench/RESULTS.md), times
``RUNTIME_SAFETY``; both grow with the attempt number, as every rule's resources do.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .dbfiles import DbSize, db_prefixes, db_size
from .errors import ConfigError
from .layout import HIGHCONF, REPRESENTATIVES, bucket_shards

__all__ = [
    "BASE_MB",
    "KMER_BYTES",
    "FOLDSEEK_BYTES_PER_RESIDUE",
    "PREFILTER_BYTES_PER_RESIDUE",
    "PREFILTER_FIXED_BYTES",
    "PREFILTER_BYTES_PER_SEQUENCE",
    "prefilter_floor_mb",
    "linclust_floor_mb",
    "segments_for",
    "check_segments",
    "counts_size",
    "check_prefilter_floor",
    "RATES",
    "InputSize",
    "sequences_size",
    "structures_size",
    "mem_mb",
    "runtime_min",
    "split_memory_limit",
    "job_size",
    "alignment_hits",
]

#: Memory of a job beyond its data (the program, buffers, Python), MB.
BASE_MB = 1000
#: Bytes of one entry of the k-mer table of linclust and of foldseek cluster's first step.
KMER_BYTES = 16
#: Bytes per residue foldseek holds of a database it searches or clusters (6 + 1 + 1).
FOLDSEEK_BYTES_PER_RESIDUE = 8
#: Bytes per residue of the prefilter's index table (MMseqs2: 7 x N x L).
PREFILTER_BYTES_PER_RESIDUE = 7
#: The prefilter's k-mer index table and extended substitution matrix, 8 x a^k bytes each
#: (foldseek's 3Di k-mers: a = 20, k = 6), which no split reduces.
PREFILTER_FIXED_BYTES = 2 * 8 * 20**6
#: The prefilter's estimate per target sequence that no split reduces: the database index
#: (16 + 4 bytes) and bookkeeping (22 bytes).
PREFILTER_BYTES_PER_SEQUENCE = 42
#: Anonymous memory per sequence of linclust's later steps (measured 86-95 bytes at 2x10^6
#: sequences: bench/RESULTS.md, "Where linclust's memory goes").
LINCLUST_BYTES_PER_SEQUENCE = 95
#: What a linclust job holds beside them while those steps run (the programs, the waiting
#: Python; measured: 16 MiB of anonymous memory in mergeclusters at 2x10^5), with room.
LINCLUST_BASE_MB = 500
#: The linclust jobs (their k-mer table, 16 bytes per k-mer, and the per-sequence floor).
LINCLUST_KINDS = ("mmseqs_cluster", "mmseqs_cluster_segment", "mmseqs_assign_segment")
#: What the merge of a segmented clustering asks for beyond ``BASE_MB`` (DuckDB's sort,
#: half the request, spills beyond it): 4 GB in all.
MERGE_BYTES = 2.4e9
#: A segment's sequences beyond N/P at most (a length is never split), for the checks.
SEGMENT_MARGIN = 1.1
#: The file of a segmented clustering's folder that holds its sequences and residues.
COUNTS = "counts.json"
#: The segmented clustering's jobs sized by their folders' counts (:mod:`foldatlas.segments`).
SEGMENT_KINDS = ("mmseqs_cluster_segment", "mmseqs_assign_segment")
#: Anonymous memory per structure of foldseek's clust, mergeclusters, createtsv (measured
#: 21-40 MiB at 2x10^5 mostly unrelated structures: 110-210 bytes).
CLUST_BYTES_PER_STRUCTURE = 250
#: clust's memory per alignment hit (MMseqs2's graph: a 4-byte key and a 2-byte score
#: per edge, doubled where it adds the missing reverse edges), and the bytes of one hit
#: in an alignment database (a text line, measured 46 at 2x10^5).
CLUST_BYTES_PER_HIT, ALN_BYTES_PER_HIT = 16, 45
#: foldseek cluster's time grows faster than its input: 21x for 10x between 2x10^4 and
#: 2x10^5 structures (exponent 1.32). Its rate was measured at ``CLUSTER_RATE_AT``
#: structures, so a larger input is given ``(N / CLUSTER_RATE_AT) ** CLUSTER_GROWTH``
#: times the linear estimate (a search job of a cascade: its share of that).
CLUSTER_RATE_AT, CLUSTER_GROWTH = 200_000, 0.32
#: Headroom on a computed request.
MEM_HEADROOM = 1.25
#: The split limit's share of a job's memory, and what it leaves beside (MB).
SPLIT_SHARE, SPLIT_RESERVE_MB = 0.8, 200
#: Residues per thread-second of each job kind, measured by bench/annotate_sizes.py on 2
#: cores (bench/RESULTS.md): linclust 1.7-3.1x10^6, createdb 1.9x10^5, cluster 1.6x10^4
#: on 2x10^5 varied structures (3.4x10^4 on 2x10^4: cluster's time grows faster than its
#: input, 21x for 10x, so a larger one takes longer than this rate says). Search was not
#: measured: it is given cluster's rate. A search target made a database
#: (foldseek_target_db) is createdb.
RATES = {"mmseqs_cluster": 1.4e6, "mmseqs_cluster_segment": 1.4e6, "mmseqs_assign_segment": 1.4e6, "mmseqs_split_segments": 2.0e8, "mmseqs_merge_segments": 3.0e7, "foldseek_createdb": 1.0e5, "foldseek_target_db": 1.0e5, "foldseek_bins_db": 1.0e5, "foldseek_cluster": 1.5e4, "foldseek_search": 1.5e4,
         "foldseek_representatives": 1.0e6, "foldseek_cluster_linclust": 1.0e5, "foldseek_cluster_search": 1.5e4, "foldseek_cluster_round": 1.0e6}  # fmt: skip
#: The kinds sized by the representatives' database (:attr:`Layout.foldseek_representatives`).
REPRESENTATIVES_KINDS = ("foldseek_cluster", "foldseek_cluster_linclust", "foldseek_cluster_search", "foldseek_cluster_round")
RUNTIME_BASE_MIN = 10
RUNTIME_SAFETY = 3.0
#: Gzip-compressed PDB bytes per residue in a shard (about 25 KB for 250 residues),
#: for sizing before foldseek has read a shard.
PDB_GZ_BYTES_PER_RESIDUE = 100


@dataclass(frozen=True)
class InputSize:
    """Sequences (or chains) and residues of a job's input."""

    sequences: int
    residues: int


def sequences_size(path: str | os.PathLike[str]) -> InputSize:
    """Rows and residues of a sequences Parquet file: the sum of its ``length`` column
    (one integer column, read by DuckDB: about a second per 10^8 rows), or of the
    sequences' lengths when it has none."""
    from .duck import connect, sql_path

    con = connect(threads=2)
    con.execute("SET enable_progress_bar = false")
    names = con.sql(f"SELECT * FROM read_parquet({sql_path(path)}) LIMIT 0").columns
    residues = "length" if "length" in names else "length(sequence)"
    n, total = con.execute(f"SELECT count(*), coalesce(sum({residues}), 0) FROM read_parquet({sql_path(path)})").fetchall()[0]
    return InputSize(int(n), int(total))


def structures_size(paths: list[Path]) -> InputSize:
    """Residues of structure archives (``.tar`` shards of gzip-compressed PDB), estimated
    from their size; a folder counts every file under it."""
    total = 0
    for p in paths:
        p = Path(p)
        files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
        total += sum(f.stat().st_size for f in files)
    return _gz_pdb_size(total)


def _gz_pdb_size(compressed: int) -> InputSize:
    """Chains and residues behind ``compressed`` bytes of gzip-compressed PDB (250 residues a chain)."""
    residues = compressed // PDB_GZ_BYTES_PER_RESIDUE
    return InputSize(residues // 250, residues)


def indexed_size(index: str | os.PathLike[str]) -> InputSize:
    """Residues of the high-confidence structures an index file lists (an atlas without
    copies), estimated from their compressed bytes as :func:`structures_size` does."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(index, columns=["collection", "data_length"])
    return _gz_pdb_size(int(pc.sum(t.filter(pc.equal(t["collection"], HIGHCONF))["data_length"]).as_py() or 0))


def prefilter_floor_mb(size: InputSize) -> float:
    """The smallest ``--split-memory-limit`` (MB) with which foldseek's prefilter starts
    on a target of ``size``: its estimate of what no split reduces (fixed tables and 42
    bytes per sequence) must fit 90% of the limit; 10% more for the shares of the split
    parts. 1.26 GB for 2x10^5 structures (it started at 1,150 MiB = 1,206 MB, not at
    1,100 MiB); 3.1 GB for the Atlas's 3.6x10^7 clust30 representatives."""
    return 1.1 * (PREFILTER_FIXED_BYTES + PREFILTER_BYTES_PER_SEQUENCE * size.sequences) / 0.9 / 1e6


def _need_mb(kind: str, size: InputSize, kmer_per_seq: int, hits: int = 0) -> float:
    kmers = size.sequences * kmer_per_seq * KMER_BYTES
    foldseek = PREFILTER_FIXED_BYTES + PREFILTER_BYTES_PER_SEQUENCE * size.sequences + size.residues * (FOLDSEEK_BYTES_PER_RESIDUE + PREFILTER_BYTES_PER_RESIDUE)
    if kind in LINCLUST_KINDS:
        data = kmers + size.residues
    elif kind == "mmseqs_split_segments":  # a length histogram, then one pass of batches
        data = 0
    elif kind == "mmseqs_merge_segments":  # DuckDB's share (half the request), spilling beyond it
        data = MERGE_BYTES
    elif kind in ("foldseek_cluster", "foldseek_cluster_linclust"):
        data = kmers + foldseek
    elif kind in ("foldseek_search", "foldseek_createdb", "foldseek_cluster_search"):
        data = foldseek
    elif kind == "foldseek_cluster_round":
        data = CLUST_BYTES_PER_STRUCTURE * size.sequences + CLUST_BYTES_PER_HIT * hits
    else:
        raise ValueError(f"expected one of {', '.join(RATES)}, found {kind!r}")
    return BASE_MB + MEM_HEADROOM * data / 1e6


def linclust_floor_mb(size: InputSize) -> float:
    """The smallest request of a linclust job over ``size``: what its later steps hold
    per sequence (``LINCLUST_BYTES_PER_SEQUENCE``, no option bounds it), with headroom,
    and ``LINCLUST_BASE_MB`` beside. About 0.6 GB for 10^6 sequences, 84 GB for 7x10^8."""
    return LINCLUST_BASE_MB + MEM_HEADROOM * LINCLUST_BYTES_PER_SEQUENCE * size.sequences / 1e6


def segments_for(sequences: int, max_mem_mb: int) -> int:
    """The ``mmseqs.segments`` whose jobs fit ``max_mem_mb``: a job holds at most two
    segments' sequences, about 2/P of ``sequences`` (10% more: a length is never split
    between segments); 1 when one job fits."""
    if linclust_floor_mb(InputSize(sequences, 0)) <= max_mem_mb:
        return 1
    per_job = (max_mem_mb - LINCLUST_BASE_MB) * 1e6 / (MEM_HEADROOM * LINCLUST_BYTES_PER_SEQUENCE)
    return math.ceil(SEGMENT_MARGIN * 2 * sequences / max(1.0, per_job))


def check_segments(sequences: int, segments: int, max_mem_mb: int, *, largest_two: int | None = None) -> None:
    """Stop before the segmented clustering runs when its largest job would not fit
    ``max_mem_mb``: two segments' sequences (``largest_two`` when the segments are known,
    else 2/P of ``sequences`` and 10%).

    Raises
    ------
    ConfigError
        Naming ``mmseqs.segments`` and the number that fits.
    """
    job = largest_two if largest_two is not None else math.ceil(SEGMENT_MARGIN * 2 * sequences / segments)
    if segments > 1 and linclust_floor_mb(InputSize(job, 0)) > max_mem_mb:
        need = max(segments + 1, segments_for(sequences, max_mem_mb))
        raise ConfigError(
            f"mmseqs.segments: expected at least {need} for {sequences} unique sequences under mmseqs.max_mem_mb {max_mem_mb} "
            f"(a job holds two segments' sequences, {job} here, and linclust about {LINCLUST_BYTES_PER_SEQUENCE} bytes each), found {segments}",
            key="mmseqs.segments",
            value=segments,
        )


def _refuse_linclust(size: InputSize, max_mem_mb: int, kind: str) -> None:
    need = math.ceil(linclust_floor_mb(size))
    if max_mem_mb < need:
        split = f"mmseqs.segments: {segments_for(size.sequences, max_mem_mb)}" if kind == "mmseqs_cluster" else "more mmseqs.segments"
        raise ConfigError(
            f"mmseqs.max_mem_mb: expected at least {need} MB, which linclust's later steps hold for {size.sequences} sequences in one job "
            f"(about {LINCLUST_BYTES_PER_SEQUENCE} bytes each, no option bounds it), found {max_mem_mb}; raise it, or split the clustering "
            f"into jobs ({split}, README \"Sequence clustering in jobs\")",
            key="mmseqs.max_mem_mb",
            value=max_mem_mb,
        )


def _floor_mb(kind: str, size: InputSize) -> int:
    """The smallest request of a foldseek job whose split limit starts its prefilter, or
    of a linclust job (:func:`linclust_floor_mb`)."""
    if kind in LINCLUST_KINDS:
        return math.ceil(linclust_floor_mb(size))
    if kind not in ("foldseek_cluster", "foldseek_search", "foldseek_cluster_search"):
        return 0
    return math.ceil((prefilter_floor_mb(size) + SPLIT_RESERVE_MB) / SPLIT_SHARE)


def _refuse_below_floor(size: InputSize, mem_mb: int, found: str) -> None:
    need = _floor_mb("foldseek_search", size)
    if mem_mb < need:
        raise ConfigError(
            f"foldseek.max_mem_mb: expected at least {need} MB, which foldseek's prefilter needs to start on {size.sequences} structures "
            f"(README, Annotation resources), found {found}",
            key="foldseek.max_mem_mb",
            value=mem_mb,
        )


def mem_mb(kind: str, size: InputSize, *, attempt: int, max_mem_mb: int, kmer_per_seq: int = 0, hits: int = 0) -> int:
    """Memory request (MB) of a job of ``kind`` over ``size``: the formula above times the
    attempt, never more than ``max_mem_mb``, never less than a foldseek prefilter needs
    (:func:`prefilter_floor_mb`, plus what the split limit leaves aside). ``hits``: the
    alignment hits a cascade's ``clust`` job reads (:func:`alignment_hits`).

    Raises
    ------
    ConfigError
        ``max_mem_mb`` is below what foldseek's prefilter needs to start on ``size``
        (a search's targets, the representatives a cluster or a cascade's search job
        searches: exact sizes; the cluster job checks it again,
        :func:`check_prefilter_floor`), or below what a linclust job's sequences need
        (:func:`linclust_floor_mb`).
    """
    if kind in ("foldseek_search", "foldseek_cluster", "foldseek_cluster_search"):
        _refuse_below_floor(size, max_mem_mb, str(max_mem_mb))
    if kind in LINCLUST_KINDS:
        _refuse_linclust(size, max_mem_mb, kind)
    floor = min(max_mem_mb, _floor_mb(kind, size))
    return int(min(max_mem_mb, max(floor, math.ceil(_need_mb(kind, size, kmer_per_seq, hits)) * attempt)))


def runtime_min(kind: str, size: InputSize, *, threads: int, attempt: int, share: float = 1.0) -> int:
    """Runtime request (minutes) of a job of ``kind`` over ``size`` on ``threads`` threads,
    doing ``share`` of the work (a cascade's search job: 1/shards)."""
    work = share * RUNTIME_SAFETY * size.residues / (RATES[kind] * max(1, threads)) / 60
    if kind in ("foldseek_cluster", "foldseek_cluster_search"):
        work *= max(1.0, size.sequences / CLUSTER_RATE_AT) ** CLUSTER_GROWTH
    return int(math.ceil(RUNTIME_BASE_MIN + work) * attempt)


def check_prefilter_floor(size: InputSize, mem_mb: int) -> None:
    """Stop before foldseek runs when the split limit of a job granted ``mem_mb`` is
    below the prefilter's floor for a target of ``size`` (foldseek would stop with
    "Cannot fit databases into ...").

    Raises
    ------
    ConfigError
        Naming ``foldseek.max_mem_mb`` and the request it needs.
    """
    _refuse_below_floor(size, mem_mb, f"a request of {mem_mb}")


def split_memory_limit(mem_mb: int) -> str:
    """``--split-memory-limit`` for a job granted ``mem_mb`` (MB), as mmseqs and foldseek
    read it (``1234M``, in MiB): 80% of it, less 200 MB. The split limit bounds the k-mer
    and index tables only. The databases (linclust's sequences, foldseek's C-alpha, 3Di
    and amino acids) are memory-mapped: page cache, which the kernel reclaims within a
    cgroup limit, so they are not subtracted (before foldatlas 0.13 foldseek's were: past
    16 GB of database, as at the Atlas's 3.6x10^7 representatives, the split fell to its
    floor and the prefilter refused to start). Under a 2,000 MB cgroup memory limit (as
    Slurm's task/cgroup sets it) linclust ran with 1,400M and 1,700M, its 564 MB of
    sequences page cache (bench/RESULTS.md)."""
    return f"{max(100, int((SPLIT_SHARE * mem_mb - SPLIT_RESERVE_MB) * 1e6 / 2**20))}M"


def alignment_hits(folders: Sequence[str | os.PathLike[str]]) -> int:
    """Alignment hits in the ``aln`` databases of a cascade's search folders, estimated
    from their data files' bytes (``ALN_BYTES_PER_HIT`` a hit). A missing folder raises
    FileNotFoundError naming it (Snakemake then sizes the job when its input exists)."""
    for d in folders:
        if not Path(d).exists():
            raise FileNotFoundError(errno.ENOENT, "input not made yet", str(d))
    total = sum(f.stat().st_size for d in folders for f in Path(d).glob("aln*") if f.suffix not in (".index", ".dbtype"))
    return total // ALN_BYTES_PER_HIT


def _db_folder_size(folder: Path, name: str = HIGHCONF) -> InputSize:
    total = DbSize(0, 0)
    for prefix in db_prefixes(folder, name):
        total += db_size(prefix)
    return InputSize(total.entries, total.residues)


def _target_size(target: str) -> InputSize:
    if Path(f"{target}.dbtype").exists():
        d = db_size(target)
        return InputSize(d.entries, d.residues)
    return structures_size([Path(target)])


def job_size(kind: str, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, targets: Sequence[str] = ()) -> InputSize:
    """The input size of a job of ``kind`` whose main input is ``path`` (or several paths,
    added up): the sequences Parquet file (mmseqs_cluster), one bucket's structures
    folder of the atlas (foldseek_createdb; without copies, the bucket's file of
    ``index.parquet``: :func:`indexed_size`), a search target's structures
    (foldseek_target_db), the shard databases' folders
    (foldseek_representatives: every high-confidence chain), the representatives'
    folder (foldseek_cluster and the cascade's jobs: its database, exact), a bucket's
    bin shards (foldseek_bins_db), or the search
    ``targets`` (foldseek_search: databases, by their index; the database made of a
    target that is structures, foldseek_target_db's, is exact where the structures'
    bytes are a guess; the targets are searched one at a time, so the size is the
    largest target's entries and residues). A missing path or target raises
    FileNotFoundError naming it (Snakemake then sizes the job when its input exists)."""
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, "input not made yet", str(p))
    if kind == "foldseek_search":
        for t in targets:  # a target made a database by an earlier job: sized once it is there
            if not Path(f"{t}.dbtype").exists() and not Path(t).exists():
                raise FileNotFoundError(errno.ENOENT, "search target not made yet", str(t))
        sizes = [_target_size(t) for t in targets]  # searched one at a time: the largest sizes the job
        return InputSize(max((t.sequences for t in sizes), default=0), max((t.residues for t in sizes), default=0))
    if kind not in RATES:
        raise ValueError(f"expected one of {', '.join(RATES)}, found {kind!r}")
    if kind in ("mmseqs_cluster", "mmseqs_split_segments", "mmseqs_merge_segments"):
        return _total([sequences_size(p) for p in paths])
    if kind in SEGMENT_KINDS:  # the folders a segment job reads (a round's representatives, what is left of a segment)
        return _total([counts_size(p) for p in paths])
    if kind == "foldseek_createdb":  # a structures folder, or without copies its index file
        return _total([structures_size(bucket_shards(p)) if p.is_dir() else indexed_size(p) for p in paths])
    if kind in ("foldseek_target_db", "foldseek_bins_db"):  # structures of any layout, bin shards: every file
        return structures_size(paths)
    if kind in REPRESENTATIVES_KINDS:  # the representatives' database (none: an atlas without one)
        return _total([_db_folder_size(p, REPRESENTATIVES) for p in paths])
    return _total([_db_folder_size(p) for p in paths])


def counts_size(folder: str | os.PathLike[str]) -> InputSize:
    """Sequences and residues of a segmented clustering's folder (its ``counts.json``:
    :mod:`foldatlas.segments`)."""
    import json

    counts = json.loads((Path(folder) / COUNTS).read_text())
    return InputSize(int(counts["sequences"]), int(counts["residues"]))


def _total(sizes: Sequence[InputSize]) -> InputSize:
    return InputSize(sum(s.sequences for s in sizes), sum(s.residues for s in sizes))
