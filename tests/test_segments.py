"""The sequence clustering in segments (mmseqs.segments, foldatlas.segments): the split by
length, the rounds and assignments with the real mmseqs, the accounting of the merge,
the sizing of the jobs, and the workflow's jobs on the demo."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from foldatlas.annotate import mmseqs_linclust
from foldatlas.errors import ConfigError, InternalError
from foldatlas.fasta import sequence_checksum
from foldatlas.segments import (
    PAIRS_SCHEMA,
    assign_segment,
    cluster_segment,
    merge_segments,
    require_greedy,
    segment_bounds,
    segment_folder,
    segment_of,
    split_segments,
)
from foldatlas.settings import MmseqsSettings
from foldatlas.sizing import InputSize, check_segments, job_size, linclust_floor_mb, mem_mb, segments_for
from foldatlas.tables import SEQ_CLUSTERS_SCHEMA

REPO = Path(__file__).resolve().parents[1]
MMSEQS = shutil.which("mmseqs")
needs_mmseqs = pytest.mark.skipif(MMSEQS is None, reason="mmseqs not on PATH (apt-get install mmseqs2); .ci/run installs it")
AA = "ACDEFGHIKLMNPQRSTVWY"


def families(n: int, seed: int = 3) -> list[str]:
    """Unique sequences in families: variants of a random base with 5-50% of residues
    replaced and up to a fifth cut from each end (so members are shorter than others)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        base = rng.integers(0, 20, int(rng.integers(40, 160)))
        for _ in range(int(rng.integers(1, 8))):
            v = base.copy()
            mut = rng.random(len(v)) < rng.uniform(0.05, 0.5)
            v[mut] = rng.integers(0, 20, int(mut.sum()))
            a, b = int(rng.integers(0, len(v) // 5)), len(v) - int(rng.integers(0, len(v) // 5))
            out.append("".join(AA[i] for i in v[a:b]))
    return list(dict.fromkeys(out))[:n]


def write_sequences(path: Path, seqs: list[str]) -> Path:
    pq.write_table(pa.table({"checksum": [sequence_checksum(s.encode()) for s in seqs], "sequence": seqs, "length": [len(s) for s in seqs]}), path)
    return path


def read_fasta(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert all(h.startswith(">") for h in lines[::2])
    return {h[1:]: s for h, s in zip(lines[::2], lines[1::2])}


def run_segments(binary: str, seqs: Path, work: Path, p: int, settings: MmseqsSettings) -> tuple[list[Path], list[Path]]:
    """Every job of the segmented clustering, in the workflow's order; the rounds' and the
    assignments' pairs files."""
    split_segments(seqs, work / "split", segments=p, max_mem_mb=16000)
    left = {s: segment_folder(work / "split", s) for s in range(p)}
    rounds, assigns = [], []
    for r in range(p):
        cluster_segment(binary, left[r], work / f"round_{r}", work / f"round_{r}.parquet", settings=settings, threads=2, mem_mb=2000, scratch=work / "scratch")
        rounds.append(work / f"round_{r}.parquet")
        for s in range(r + 1, p):
            assign_segment(binary, work / f"round_{r}", left[s], work / f"assign_{r}_{s}", work / f"assign_{r}_{s}.parquet", settings=settings, threads=2, mem_mb=2000)
            left[s] = work / f"assign_{r}_{s}"
            assigns.append(work / f"assign_{r}_{s}.parquet")
    return rounds, assigns


def test_segments_are_cut_by_length_longest_first_never_within_a_length():
    lengths = np.arange(1, 101)
    counts = np.full(100, 10)
    bounds = segment_bounds(lengths, counts, 4)
    seg = segment_of(lengths, bounds)
    assert [int(counts[seg == s].sum()) for s in range(4)] == [250, 250, 250, 250]
    assert seg[-1] == 0 and seg[0] == 3 and np.all(np.diff(seg) <= 0)  # the longest first
    # uneven: a length is never split, so a segment takes all of the length that fills it
    counts = np.array([1, 1, 97, 1])
    seg = segment_of(np.array([4, 3, 2, 1]), segment_bounds(np.array([4, 3, 2, 1]), counts, 3))
    assert seg.tolist() == [0, 0, 0, 2]  # 99 sequences, none (the length of 97 filled two shares), 1


def test_split_writes_every_sequence_once_with_counts(tmp_path):
    seqs = ["A" * 30, "C" * 30, "D" * 20, "E" * 12, "F" * 12, "G" * 7]
    path = write_sequences(tmp_path / "s.parquet", seqs)
    sizes = split_segments(path, tmp_path / "split", segments=4)
    got = [read_fasta(segment_folder(tmp_path / "split", s) / "sequences.fasta") for s in range(4)]
    assert sorted(k for g in got for k in g) == sorted(sequence_checksum(s.encode()) for s in seqs)
    assert [len(g) for g in got] == [s.sequences for s in sizes] and sum(s.residues for s in sizes) == sum(map(len, seqs))
    lens = [[len(v) for v in g.values()] for g in got]
    assert all(min(a) >= max(b) for a, b in zip(lens, lens[1:]) if a and b)  # longest first
    for s, size in enumerate(sizes):  # what sizes the next jobs
        assert job_size("mmseqs_cluster_segment", segment_folder(tmp_path / "split", s)) == size
    # one length only: everything in the first segment, the others empty
    split_segments(write_sequences(tmp_path / "one.parquet", ["AC" * 10, "CA" * 10]), tmp_path / "one", segments=3)
    assert [len(read_fasta(segment_folder(tmp_path / "one", s) / "sequences.fasta")) for s in range(3)] == [2, 0, 0]


def test_segments_need_the_greedy_cluster_mode():
    require_greedy(2, 8)
    require_greedy(0, 1)
    with pytest.raises(ConfigError, match="mmseqs.cluster_mode: expected 2 .* found 0"):
        require_greedy(0, 2)


def test_one_linclust_job_too_large_is_refused_naming_the_segments():
    # about 95 bytes a sequence that no option bounds: 7x10^8 sequences cannot run under 16 GB
    size = InputSize(7 * 10**8, 175 * 10**9)
    with pytest.raises(ConfigError, match=r"mmseqs.max_mem_mb: expected at least \d+ MB.*mmseqs.segments: \d+"):
        mem_mb("mmseqs_cluster", size, attempt=1, max_mem_mb=16000, kmer_per_seq=100)
    p = segments_for(size.sequences, 16000)
    assert p > 1 and segments_for(10**6, 16000) == 1
    check_segments(size.sequences, p, 16000)  # the number it names fits
    with pytest.raises(ConfigError, match=rf"mmseqs.segments: expected at least {p} for {size.sequences} unique sequences"):
        check_segments(size.sequences, 4, 16000)
    # a job of the segmented clustering holds at most about 2/P of the sequences: it fits
    job = InputSize(int(2.2 * size.sequences / p), int(2.2 * size.residues / p))
    assert linclust_floor_mb(job) <= 16000 < linclust_floor_mb(InputSize(int(2.2 * size.sequences / (p - 1)), 0))
    assert mem_mb("mmseqs_assign_segment", job, attempt=1, max_mem_mb=16000, kmer_per_seq=100) == 16000
    small = InputSize(10**6, 2.5 * 10**8)  # the floor is below the k-mer term: the request is the formula's
    assert mem_mb("mmseqs_cluster_segment", small, attempt=1, max_mem_mb=10**6, kmer_per_seq=100) == mem_mb("mmseqs_cluster", small, attempt=1, max_mem_mb=10**6, kmer_per_seq=100)
    assert mem_mb("mmseqs_cluster", InputSize(46, 10**4), attempt=1, max_mem_mb=1000, kmer_per_seq=100) == 1000  # the least cap still runs a small job


@needs_mmseqs
def test_segmented_clustering_accounts_for_every_sequence(tmp_path):
    seqs = families(900)
    path = write_sequences(tmp_path / "s.parquet", seqs)
    settings = MmseqsSettings.from_config({})
    rounds, assigns = run_segments(MMSEQS, path, tmp_path, 3, settings)
    n = merge_segments(path, rounds + assigns, tmp_path / "clusters.parquet", threads=2)
    t = pq.read_table(tmp_path / "clusters.parquet")
    assert t.schema.equals(SEQ_CLUSTERS_SCHEMA, check_metadata=False) and n == t.num_rows == len(seqs)
    rows = t.to_pylist()
    assert sorted(r["member"] for r in rows) == sorted(sequence_checksum(s.encode()) for s in seqs)
    length = {sequence_checksum(s.encode()): len(s) for s in seqs}
    assert all(length[r["representative"]] >= length[r["member"]] for r in rows)  # greedy, longest first
    reps = {r["representative"] for r in rows}
    assert all(any(x["member"] == rep and x["representative"] == rep for x in rows) for rep in reps)
    assigned = sum(pq.read_metadata(a).num_rows for a in assigns)
    assert assigned > 0  # later segments' sequences joined earlier rounds' representatives
    one = mmseqs_linclust(MMSEQS, path, tmp_path / "one.parquet", settings=settings, threads=2)
    one_reps = len(set(pq.read_table(tmp_path / "one.parquet")["representative"].to_pylist()))
    assert one == len(seqs) and one_reps <= len(reps) <= 1.1 * one_reps  # about as many clusters as one linclust
    # a sequence lost or counted twice is refused, and nothing is written
    out = tmp_path / "again.parquet"
    first = next(a for a in assigns if pq.read_metadata(a).num_rows)
    table = pq.read_table(first)
    pq.write_table(table.slice(1), first)
    with pytest.raises(InternalError, match=r"each in one cluster, found \d+ rows for \d+ sequences"):
        merge_segments(path, rounds + assigns, out, threads=2)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), first)
    with pytest.raises(InternalError, match="each in one cluster"):
        merge_segments(path, rounds + assigns, out, threads=2)
    assert not out.exists()


@needs_mmseqs
def test_assignment_without_representatives_leaves_the_segment_whole(tmp_path):
    path = write_sequences(tmp_path / "s.parquet", ["A" * 40, "C" * 41, "ACDEFGHIKL" * 4])
    split_segments(path, tmp_path / "split", segments=2)
    settings = MmseqsSettings.from_config({})
    empty = tmp_path / "empty"
    split_segments(write_sequences(tmp_path / "none.parquet", []), empty, segments=1)
    cluster_segment(MMSEQS, segment_folder(empty, 0), tmp_path / "round", tmp_path / "round.parquet", settings=settings, threads=1)
    assert pq.read_metadata(tmp_path / "round.parquet").num_rows == 0
    n = assign_segment(MMSEQS, tmp_path / "round", segment_folder(tmp_path / "split", 1), tmp_path / "assign", tmp_path / "assign.parquet",
                       settings=settings, threads=1)  # fmt: skip
    assert n == 0 and read_fasta(tmp_path / "assign/sequences.fasta") == read_fasta(segment_folder(tmp_path / "split", 1) / "sequences.fasta")
    assert pq.read_table(tmp_path / "assign.parquet").schema.equals(PAIRS_SCHEMA)


@needs_mmseqs
def test_a_segment_wholly_assigned_leaves_nothing(tmp_path):
    # every sequence of the second segment is a close variant of the first's: all assigned
    base = families(1, seed=5)[0] * 3
    variants = [base[:-k] for k in range(1, 6)]
    path = write_sequences(tmp_path / "s.parquet", [base, *variants])
    split_segments(path, tmp_path / "split", segments=2)
    settings = MmseqsSettings.from_config({})
    cluster_segment(MMSEQS, segment_folder(tmp_path / "split", 0), tmp_path / "round", tmp_path / "round.parquet", settings=settings, threads=1)
    n = assign_segment(MMSEQS, tmp_path / "round", segment_folder(tmp_path / "split", 1), tmp_path / "assign", tmp_path / "assign.parquet",
                       settings=settings, threads=1)  # fmt: skip
    left = segment_folder(tmp_path / "split", 1) / "sequences.fasta"
    assert n == len(read_fasta(left)) > 0 and (tmp_path / "assign/sequences.fasta").read_text() == ""
    assert job_size("mmseqs_cluster_segment", tmp_path / "assign") == InputSize(0, 0)
    cluster_segment(MMSEQS, tmp_path / "assign", tmp_path / "round1", tmp_path / "round1.parquet", settings=settings, threads=1)
    n = merge_segments(path, [tmp_path / "round.parquet", tmp_path / "assign.parquet", tmp_path / "round1.parquet"], tmp_path / "c.parquet", threads=1)
    assert n == 6 and len(set(pq.read_table(tmp_path / "c.parquet")["representative"].to_pylist())) <= 3


def test_too_few_segments_are_refused_before_the_split_writes(tmp_path):
    path = write_sequences(tmp_path / "s.parquet", families(200))
    with pytest.raises(ConfigError, match=r"mmseqs.segments: expected at least \d+ for 200 unique sequences under mmseqs.max_mem_mb 500"):
        split_segments(path, tmp_path / "split", segments=2, max_mem_mb=500)
    assert not (tmp_path / "split").exists()
    split_segments(path, tmp_path / "split", segments=2, max_mem_mb=1000)  # the schema's least cap holds small inputs
    assert (tmp_path / "split").exists()


def _planned(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M)}


@needs_mmseqs
@pytest.mark.workflow
def test_segmented_clustering_in_the_workflow(tmp_path):
    from test_workflow import prepare, run

    wd = prepare(tmp_path, {"mmseqs": {"enabled": True, "threads": 2, "segments": 3}})
    target = ["--", "results/mmseqs/clusters.parquet"]
    base = ["-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "run.yaml"]
    res = run(base + target, wd, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    done = _planned(res.stdout + res.stderr)
    assert {k: done.get(k) for k in ("mmseqs_split_segments", "mmseqs_cluster_segment", "mmseqs_assign_segment", "mmseqs_cluster")} == {
        "mmseqs_split_segments": 1, "mmseqs_cluster_segment": 3, "mmseqs_assign_segment": 3, "mmseqs_cluster": 1}  # fmt: skip
    clusters = pq.read_table(wd / "results/mmseqs/clusters.parquet")
    sums = pq.read_table(wd / "results/ingest/sequences.parquet", columns=["checksum"])["checksum"].to_pylist()
    assert sorted(clusters["member"].to_pylist()) == sorted(sums)
    assert not (wd / "results/mmseqs/segments").exists()  # the segments' folders are temporary
    assert not list((wd / "results/scratch").glob("mmseqs_*/*"))
    # threads or memory change nothing of the segmented clustering
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["mmseqs"].update(threads=1, max_mem_mb=8000)
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    dry = run(base + ["-n"] + target, wd, timeout=300)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    # one linclust job: the same sequences, and the thresholds reach it
    cfg["mmseqs"]["segments"] = 1
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run(base + target, wd, timeout=900)
    assert res.returncode == 0 and set(_planned(res.stdout + res.stderr)) == {"mmseqs_cluster", "total"}, res.stdout + res.stderr
    assert sorted(pq.read_table(wd / "results/mmseqs/clusters.parquet")["member"].to_pylist()) == sorted(sums)
    # another cluster mode cannot be segmented: stopped before anything runs
    cfg["mmseqs"].update(segments=2, cluster_mode=0)
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    dry = run(base + ["-n"] + target, wd, timeout=300)
    assert dry.returncode != 0 and "mmseqs.cluster_mode: expected 2" in dry.stdout + dry.stderr
