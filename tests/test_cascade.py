"""The structural clustering as a cascade of jobs (foldseek.cluster.shards > 1,
foldatlas.cascade): its rounds split by query give the clusters of one ``foldseek
cluster``, every representative is searched once, and foldseek's own options are used.

Runs of foldseek skip, with the reason, when it is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foldatlas.annotate import cluster_args, entry_checksum, parse_cluster_tsv
from foldatlas.cascade import CascadePlan, cluster_linclust, cluster_round, db_keys, merge_rounds, search_shard, shard_keys, with_options
from foldatlas.errors import InternalError
from foldatlas.settings import FoldseekSettings
from ideal import family_pdbs

FOLDSEEK = shutil.which("foldseek")
NEEDS_FOLDSEEK = pytest.mark.skipif(FOLDSEEK is None, reason="foldseek not on PATH (bioconda only; build it from source and put it on PATH to run these)")


def _environment(rounds: int = 2) -> dict[str, str]:
    env = {"STEPS": str(rounds), "ALIGNMENT_ALGO": "structurealign", "MERGECLU_PAR": "--threads 8 --compressed 0 -v 3 ", "RUN_ITERATIVE": "1",
           "ALIGNMENT_PAR": "-e 0.01 --threads 8 "}  # fmt: skip
    for r in range(rounds):
        env |= {f"PREFILTER{r}_PAR": f"-s {1 + r} --threads 8 --split-memory-limit 0 ", f"ALIGNMENT{r}_PAR": "-e 0.5 (unused) ", f"CLUSTER{r}_PAR": "--cluster-mode 0 --threads 8 "}
    return env


def test_the_plan_takes_every_rounds_options_from_foldseeks_workflow():
    plan = CascadePlan.from_environment(_environment(2), 2)
    assert plan.rounds == 2 and plan.algorithm == "structurealign"
    assert plan.prefilter == [["-s", "1", "--threads", "8", "--split-memory-limit", "0"], ["-s", "2", "--threads", "8", "--split-memory-limit", "0"]]
    assert plan.alignment == [["-e", "0.01", "--threads", "8"]] * 2  # what structurecluster.sh passes its rounds: ALIGNMENT_PAR
    for name in ("PREFILTER1_PAR", "ALIGNMENT_PAR", "CLUSTER1_PAR", "MERGECLU_PAR", "ALIGNMENT_ALGO"):
        env = _environment(2)
        del env[name]
        with pytest.raises(InternalError, match=f"expected foldseek cluster's workflow to pass {name} to its programs"):
            CascadePlan.from_environment(env, 2)
    with pytest.raises(InternalError, match="expected foldseek cluster to run 3 rounds .*found STEPS=2"):
        CascadePlan.from_environment(_environment(2) | {f"{p}2_PAR": "" for p in ("PREFILTER", "ALIGNMENT", "CLUSTER")}, 3)
    with pytest.raises(InternalError, match="without --cluster-reassign"):
        CascadePlan.from_environment(_environment(2) | {"REASSIGN": "TRUE"}, 2)
    with pytest.raises(InternalError, match="found an alignment extension"):
        CascadePlan.from_environment(_environment(2) | {"ALN_EXTENTION": "_ca"}, 2)


def test_a_jobs_threads_and_split_limit_replace_those_foldseek_planned():
    opts = ["-s", "8", "--threads", "2", "--split-memory-limit", "0", "-v", "3"]
    assert with_options(opts, threads="16", split_memory_limit="12016M") == ["-s", "8", "--threads", "16", "--split-memory-limit", "12016M", "-v", "3"]
    assert with_options(["-e", "0.01"], threads="4") == ["-e", "0.01", "--threads", "4"]
    assert opts[3] == "2"  # a copy: the plan is not changed


@pytest.mark.parametrize("n,shards", [(10, 3), (3, 7), (0, 2), (1000, 64)])
def test_the_shards_of_a_round_hold_every_representative_once(n, shards):
    keys = [7 * k + 1 for k in range(n)]
    parts = [shard_keys(keys, k, shards) for k in range(shards)]
    assert sorted(k for p in parts for k in p) == keys
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    with pytest.raises(InternalError, match="expected a shard in 0..2, found 3"):
        shard_keys(keys, 3, 3)


def _fake_db(prefix: Path, keys: list[int]) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.index").write_text("".join(f"{k}\t0\t1\n" for k in keys))
    Path(f"{prefix}.dbtype").write_bytes(b"\x05\x00\x00\x00")


def test_a_round_whose_shards_miss_or_repeat_a_representative_stops_before_clust(tmp_path):
    """The round's accounting: its shards' alignment entries must be the previous
    clustering's representatives, each once; otherwise nothing is clustered or written
    (foldseek is never called: the binary does not exist)."""
    _fake_db(tmp_path / "previous" / "clusters", [1, 2, 3, 4, 5])
    cases = {"missing": [[1, 3, 5], [2]], "repeated": [[1, 3, 5], [2, 4, 4]], "foreign": [[1, 3, 5], [2, 4, 9]]}
    for name, shards in cases.items():
        searches = []
        for k, keys in enumerate(shards):
            _fake_db(tmp_path / name / f"search_{k}" / "aln", keys)
            searches.append(tmp_path / name / f"search_{k}")
        with pytest.raises(InternalError, match="expected the 2 shards of round 0 to search the 5 representatives"):
            cluster_round("no-such-foldseek", tmp_path / "reps", tmp_path / "previous", searches, tmp_path / name / "clusters", linclust=tmp_path / "none", round_=0, threads=1)
        assert not (tmp_path / name / "clusters").exists()


def _family_db(tmp_path: Path, families: int = 30, members: int = 5) -> Path:
    folder = tmp_path / "pdb"
    folder.mkdir()
    for f, fam in enumerate(family_pdbs(families, members)):
        for m, pdb in enumerate(fam):
            (folder / f"{f * members + m:032x}.pdb").write_text(pdb)  # named as the atlas names them
    (tmp_path / "db").mkdir()
    subprocess.run([FOLDSEEK, "createdb", str(folder), str(tmp_path / "db" / "db"), "-v", "1"], check=True)
    return tmp_path / "db" / "db"


def _cascade(db: Path, root: Path, args: list[str], shards: int, rounds: int) -> Path:
    """Every job of a cascade, in order, as the workflow runs them; the merged TSV."""
    plan = cluster_linclust(FOLDSEEK, db, root / "linclust", cluster_args=args, rounds=rounds, threads=2, scratch=root / "scratch")
    previous, done = root / "linclust", []
    for r in range(plan.rounds):
        searches = [root / f"round_{r}" / f"search_{k}" for k in range(shards)]
        for k, s in enumerate(searches):
            search_shard(FOLDSEEK, db, previous, s, linclust=root / "linclust", round_=r, shard=k, shards=shards, threads=1, split="1500M", scratch=root / "scratch")
        cluster_round(FOLDSEEK, db, previous, searches, root / f"round_{r}" / "clusters", linclust=root / "linclust", round_=r, threads=1)
        previous = root / f"round_{r}" / "clusters"
        done.append(previous)
    return merge_rounds(FOLDSEEK, db, root / "linclust", done, root / "clu.tsv", plan=plan, threads=1)


@NEEDS_FOLDSEEK
def test_the_cascade_gives_the_clusters_of_one_foldseek_cluster(tmp_path):
    """30 made-up folds of 5 variants: the rounds split into 3 query shards, each searched
    by its own job, give exactly the clusters of one ``foldseek cluster`` run, with the
    options foldseek computed for each round."""
    db = _family_db(tmp_path)
    args = cluster_args(FoldseekSettings.from_config({}).cluster)
    subprocess.run([FOLDSEEK, "cluster", str(db), str(tmp_path / "clu"), str(tmp_path / "tmp"), *args, "--threads", "2", "-v", "1"], check=True)
    subprocess.run([FOLDSEEK, "createtsv", str(db), str(db), str(tmp_path / "clu"), str(tmp_path / "one.tsv"), "-v", "1"], check=True)
    one = parse_cluster_tsv(tmp_path / "one.tsv")
    assert 10 < len(set(one["representative"].to_pylist())) < 140  # clusters of several members: the rounds matter

    tsv = _cascade(db, tmp_path / "cascade", args, shards=3, rounds=3)
    assert parse_cluster_tsv(tsv).equals(one)
    plan = CascadePlan.read(tmp_path / "cascade" / "linclust")
    assert [opts[opts.index("-s") + 1] for opts in plan.prefilter] == ["1", "4.5", "8"]  # foldseek's rising sensitivity
    counts = [len(db_keys(tmp_path / "cascade" / "linclust" / "clusters"))]
    counts += [len(db_keys(tmp_path / "cascade" / f"round_{r}" / "clusters" / "clusters")) for r in range(3)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == len(set(one["representative"].to_pylist()))
    for r in range(3):  # each round's shards searched that round's representatives, each once
        searched = sorted(k for s in range(3) for k in db_keys(tmp_path / "cascade" / f"round_{r}" / f"search_{s}" / "aln"))
        previous = tmp_path / "cascade" / ("linclust" if r == 0 else f"round_{r - 1}/clusters")
        assert searched == sorted(db_keys(previous / "clusters"))
    assert list((tmp_path / "cascade" / "scratch").iterdir()) == []  # each job removed its working files


@NEEDS_FOLDSEEK
def test_more_shards_than_representatives_and_no_representative(tmp_path):
    """Shards without a query write an empty folder; a cascade of 2 rounds over 4 chains
    in 7 shards gives foldseek cluster's clusters; without representatives every job
    writes an empty folder."""
    db = _family_db(tmp_path, families=2, members=2)
    args = cluster_args(FoldseekSettings.from_config({"cluster": {"steps": 2}}).cluster)
    subprocess.run([FOLDSEEK, "cluster", str(db), str(tmp_path / "clu"), str(tmp_path / "tmp"), *args, "--threads", "1", "-v", "1"], check=True)
    subprocess.run([FOLDSEEK, "createtsv", str(db), str(db), str(tmp_path / "clu"), str(tmp_path / "one.tsv"), "-v", "1"], check=True)
    tsv = _cascade(db, tmp_path / "cascade", args, shards=7, rounds=2)
    assert parse_cluster_tsv(tsv).equals(parse_cluster_tsv(tmp_path / "one.tsv"))
    assert list((tmp_path / "cascade" / "round_0" / "search_6").iterdir()) == []
    assert cluster_linclust(FOLDSEEK, None, tmp_path / "none" / "linclust", cluster_args=args, rounds=2, threads=1) is None
    # as the rule scripts call them: the plan (absent) is not read
    none = tmp_path / "none" / "linclust"
    assert search_shard(FOLDSEEK, None, none, tmp_path / "none" / "s", linclust=none, round_=0, shard=0, shards=2, threads=1) == 0
    assert cluster_round(FOLDSEEK, None, none, [tmp_path / "none" / "s"], tmp_path / "none" / "c", linclust=none, round_=0, threads=1) == 0
    assert [list(p.iterdir()) for p in (tmp_path / "none").iterdir()] == [[], [], []]


@NEEDS_FOLDSEEK
def test_structural_clusters_of_the_cascade_equal_those_of_one_job(tmp_path):
    """clusters.parquet from the cascade's merged rounds equals the one foldseek cluster
    job's, row for row."""
    from foldatlas.clustering import select_representatives, structural_clusters
    from foldatlas.dbfiles import read_lookup

    db = _family_db(tmp_path, families=12, members=4)
    sums = sorted(entry_checksum(n) for n in read_lookup(db))
    shard = tmp_path / "shards" / "all" / "highconf_000000"  # one bucket's folder of shard databases, as foldseek_createdb writes it
    shard.mkdir(parents=True)
    for suffix in ("", ".dbtype", ".index", ".lookup", ".source", "_ss", "_ss.dbtype", "_ss.index", "_ca", "_ca.dbtype", "_ca.index", "_h", "_h.dbtype", "_h.index"):
        shutil.copy(f"{db}{suffix}", shard / f"highconf{suffix}")
    names = sums
    meta = tmp_path / "metadata.parquet"
    conf = [0.7 + 0.25 * ((k * 37) % 11) / 11 for k in range(len(names))]
    pq.write_table(pa.table({"checksum": sums, "plddt": conf, "ptm": conf[::-1], "is_duplicate": [False] * len(names),
                             "status": ["folded"] * len(names), "high_confidence": [True] * len(names)}), meta)  # fmt: skip
    assert select_representatives(tmp_path / "shards" / "all", tmp_path / "reps", metadata=meta, seq_clusters=None, threads=1) == len(names)
    settings = FoldseekSettings.from_config({})
    structural_clusters(FOLDSEEK, tmp_path / "reps", tmp_path / "one.parquet", settings=settings, threads=1, mem_mb=2000)
    reps_db = tmp_path / "reps" / "representatives"
    _cascade(reps_db, tmp_path / "cascade", cluster_args(settings.cluster), shards=2, rounds=3)
    rounds = [tmp_path / "cascade" / f"round_{r}" / "clusters" for r in range(3)]
    structural_clusters(FOLDSEEK, tmp_path / "reps", tmp_path / "cascade.parquet", settings=settings, threads=1, cascade=(tmp_path / "cascade" / "linclust", rounds))
    one = pq.read_table(tmp_path / "one.parquet")
    assert one.num_rows == len(names) and pq.read_table(tmp_path / "cascade.parquet").equals(one)
