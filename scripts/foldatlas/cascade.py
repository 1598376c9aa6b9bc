"""foldseek's cascaded clustering run as many jobs: the expensive steps split by query.

``foldseek cluster`` is a shell workflow (``structurecluster.sh``): a linear-time
pre-clustering (``kmermatcher``, ``structurerescorediagonal``, ``structurealign``,
``clust``), then ``--cluster-steps`` rounds of all-against-all ``prefilter`` and
``structurealign`` on the previous round's representatives, each followed by ``clust``,
and ``mergeclusters`` at the end. The rounds' ``prefilter`` and ``structurealign`` take
nearly all of its time, and each query's result depends on the targets only, so a round
can be split into query shards searched by separate jobs and merged before ``clust``.
The clusters are then those of one ``foldseek cluster`` run.

The rounds' options are foldseek's own: :func:`cluster_linclust` runs ``foldseek
cluster`` with ``--mpi-runner`` set to a small program that runs the pre-clustering's
steps and, at the first ``prefilter``, records the options foldseek computed for every
round (its workflow passes them as ``PREFILTER<n>_PAR``, ``ALIGNMENT<n>_PAR`` and
``CLUSTER<n>_PAR``) and stops it. The other jobs run the rounds' programs with those
options; only ``--threads`` and ``--split-memory-limit`` are set per job.

The jobs and their files (``<folder>`` is ``results/foldseek/cascade``):

1. :func:`cluster_linclust`: ``<folder>/linclust/`` (the pre-clustering ``clusters``
   database and ``plan.json``).
2. :func:`search_shard`, per round ``r`` and shard ``k`` of ``K``:
   ``<folder>/round_r/search_k/`` (the shard's alignment database).
3. :func:`cluster_round`, per round: ``<folder>/round_r/clusters/``.
4. :func:`merge_rounds`: the clusters of every representative as foldseek's TSV.

A round's input is the previous clustering's representatives: the keys of its
``clusters`` database, taken from the representatives' database with ``createsubdb``
in each job's scratch folder (so no output links to another).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .atomic import atomic_dir, write_json
from .errors import ConfigError, InternalError
from .layout import fresh_dir
from .tools import ToolError, run_tool

__all__ = ["CascadePlan", "cluster_linclust", "search_shard", "cluster_round", "merge_rounds", "shard_keys", "db_keys"]

log = logging.getLogger("foldatlas.cascade")

#: The exit code with which the recording runner stops ``foldseek cluster``.
_STOP = 97
_RUNNER = """#!/bin/sh
if [ "$2" = prefilter ]; then
  env -0 > {env}
  exit {stop}
fi
exec "$@"
"""
#: Files of a clustering database (mmseqs ``mvdb`` moves them, data split files included).
CLUSTERS = "clusters"
PLAN = "plan.json"


@dataclass(frozen=True)
class CascadePlan:
    """The rounds of one ``foldseek cluster`` run, as its workflow computed them.

    Attributes
    ----------
    rounds : int
        ``--cluster-steps``.
    algorithm : str
        The alignment program (``structurealign``, ``tmalign`` or ``lolalign``).
    prefilter, alignment, cluster : list of list of str
        Each round's options of ``prefilter``, the alignment program and ``clust``.
    mergeclusters : list of str
        The options of the final ``mergeclusters``.
    """

    rounds: int
    algorithm: str
    prefilter: list[list[str]]
    alignment: list[list[str]]
    cluster: list[list[str]]
    mergeclusters: list[str]

    @classmethod
    def from_environment(cls, env: dict[str, str], rounds: int) -> CascadePlan:
        """The plan from the variables foldseek's cluster workflow passed its programs."""
        # the rounds align with ALIGNMENT_PAR (structurecluster.sh; ALIGNMENT<r>_PAR is the same string today, unused)
        names = ["STEPS", "ALIGNMENT_ALGO", "ALIGNMENT_PAR", "MERGECLU_PAR"] + [f"{p}{r}_PAR" for r in range(rounds) for p in ("PREFILTER", "CLUSTER")]
        missing = [n for n in names if n not in env]
        if missing:
            raise InternalError(f"expected foldseek cluster's workflow to pass {', '.join(missing)} to its programs, found none: "
                                "this foldseek's cluster workflow is not supported by foldseek.cluster.shards > 1")  # fmt: skip
        if env.get("REASSIGN") or env.get("RUN_ITERATIVE") != "1":
            raise InternalError("expected a cascaded foldseek cluster without --cluster-reassign")
        if env.get("ALN_EXTENTION") or env.get("ALN_EXTENSION"):
            raise InternalError("expected foldseek cluster to align its rounds' databases themselves, found an alignment extension (ALN_EXTENTION)")
        if int(env["STEPS"]) != rounds:
            raise InternalError(f"expected foldseek cluster to run {rounds} rounds (--cluster-steps), found STEPS={env['STEPS']}")

        def opts(name: str) -> list[str]:
            return env[name].split()

        return cls(
            rounds=rounds,
            algorithm=env["ALIGNMENT_ALGO"],
            prefilter=[opts(f"PREFILTER{r}_PAR") for r in range(rounds)],
            alignment=[opts("ALIGNMENT_PAR") for _ in range(rounds)],
            cluster=[opts(f"CLUSTER{r}_PAR") for r in range(rounds)],
            mergeclusters=opts("MERGECLU_PAR"),
        )

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> CascadePlan:
        """The plan :func:`cluster_linclust` wrote into ``folder``."""
        return cls(**json.loads((Path(folder) / PLAN).read_text()))


def with_options(options: Sequence[str], **values: str) -> list[str]:
    """``options`` with each ``--<name>`` (underscores as dashes) set to its value:
    replaced where present, appended where not."""
    out = list(options)
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def _job_options(options: Sequence[str], threads: int, split: str | None = None) -> list[str]:
    values = {"threads": str(threads)} | ({"split_memory_limit": split} if split and "--split-memory-limit" in options else {})
    return with_options(options, **values)


def db_keys(db: str | os.PathLike[str]) -> np.ndarray:
    """The keys of a foldseek (MMseqs2) database, from its ``.index``, in its order, as
    int64 (8 bytes a key: 3.6x10^7 representatives take 290 MB); none when there is no
    such database (a cascade without representatives, a shard without queries)."""
    index = Path(f"{db}.index")
    if not index.exists() or index.stat().st_size == 0:
        return np.zeros(0, dtype=np.int64)
    table = pacsv.read_csv(
        index,
        read_options=pacsv.ReadOptions(column_names=["key", "offset", "length"]),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(include_columns=["key"], column_types={"key": pa.int64()}),
    )
    return table["key"].to_numpy()


def shard_keys(keys: Sequence[int] | np.ndarray, shard: int, shards: int) -> np.ndarray:
    """Shard ``shard`` of ``shards`` of ``keys``: every ``shards``-th key from position
    ``shard`` (interleaved, so that shards hold chains of similar lengths)."""
    if not 0 <= shard < shards:
        raise InternalError(f"expected a shard in 0..{shards - 1}, found {shard}")
    return np.asarray(keys, dtype=np.int64)[shard::shards]


def _nothing_to_do(out_dir: str | os.PathLike[str]) -> int:
    """An empty output folder (no representatives, or a shard without queries), written
    atomically; returns 0, the queries or clusters of such a job."""
    with atomic_dir(out_dir):
        pass
    return 0


@contextmanager
def working(scratch: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder in ``scratch`` (emptied first: what a killed job left there), or
    beside ``out_dir`` without one."""
    if scratch is not None:
        fresh_dir(scratch)
    with tempfile.TemporaryDirectory(prefix="cascade-", dir=scratch if scratch is not None else Path(out_dir).parent) as tmp:
        yield Path(tmp)


def _subdb(binary: str, reps_db: str | os.PathLike[str], keys: np.ndarray, out: Path) -> Path:
    """A database of the entries ``keys`` of ``reps_db`` (``createsubdb``: same keys,
    structure components included)."""
    listing = out.with_name(out.name + ".keys")
    np.savetxt(listing, np.asarray(keys, dtype=np.int64), fmt="%d")
    run_tool([binary, "createsubdb", listing, reps_db, out, "--subdb-mode", "1", "-v", "1"], logger=log)
    return out


def cluster_linclust(binary: str, reps_db: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str], *, cluster_args: Sequence[str],
                     rounds: int, threads: int, split: Sequence[str] = (), scratch: str | os.PathLike[str] | None = None) -> CascadePlan | None:  # fmt: skip
    """Run ``foldseek cluster`` up to its first round: ``out_dir`` (written atomically)
    gets the pre-clustering (``clusters``) and the rounds' options (``plan.json``);
    without representatives (``reps_db`` None) it stays empty and the later jobs have
    nothing to do."""
    if reps_db is None:
        _nothing_to_do(out_dir)
        return None
    with atomic_dir(out_dir) as out, working(scratch, out_dir) as tmp:
        # foldseek splits --mpi-runner at blanks and runs it in its own shell script: run
        # through /bin/sh (no exec permission needed, so a noexec /tmp works), no blank
        runner = Path(tempfile.mkdtemp(prefix="foldatlas-runner-")) / "runner.sh"
        if any(c.isspace() for c in str(runner)):
            raise ConfigError(f"expected a temporary folder without blanks for foldseek's --mpi-runner, found {str(runner.parent)!r}: set TMPDIR")
        try:
            env_file = Path(tmp) / "workflow.env"
            runner.write_text(_RUNNER.format(stop=_STOP, env=shlex.quote(str(env_file))))
            command = [binary, "cluster", reps_db, Path(tmp) / "clu", Path(tmp) / "work", *with_options(cluster_args, cluster_steps=str(rounds)),
                       "--threads", str(threads), *split, "--mpi-runner", f"/bin/sh {runner}", "--remove-tmp-files", "0"]  # fmt: skip
            try:
                run_tool(command, logger=log)
            except ToolError:
                if not env_file.exists() or env_file.stat().st_size == 0:  # failed before its first round
                    raise
            else:
                raise InternalError("expected foldseek cluster to stop at its first prefilter round, it finished")
        finally:
            shutil.rmtree(runner.parent, ignore_errors=True)
        dump = env_file.read_bytes().decode(errors="surrogateescape")  # another variable's bytes need not be UTF-8
        env = dict(item.split("=", 1) for item in dump.split("\0") if "=" in item)
        plan = CascadePlan.from_environment(env, rounds)
        work = next(p for p in (Path(tmp) / "work").iterdir() if p.name != "latest" and p.is_dir())
        run_tool([binary, "mvdb", work / "clu_redundancy", out / CLUSTERS, "-v", "1"], logger=log)
        write_json(out / PLAN, asdict(plan))
    log.info("pre-clustering: %d representatives for %d rounds", len(db_keys(Path(out_dir) / CLUSTERS)), rounds)
    return plan


def search_shard(binary: str, reps_db: str | os.PathLike[str] | None, previous: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 linclust: str | os.PathLike[str], round_: int, shard: int, shards: int, threads: int, split: str | None = None,
                 scratch: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """Round ``round_``'s ``prefilter`` and alignment for one query shard: the shard's
    part of the previous clustering's representatives (``previous``, a folder with a
    ``clusters`` database) against all of them, with the options in ``linclust``'s plan.
    Writes ``out_dir/aln`` (nothing when the shard has no query); returns the number of
    queries."""
    keys = db_keys(Path(previous) / CLUSTERS)
    mine = shard_keys(keys, shard, shards)
    if reps_db is None or not len(mine):
        return _nothing_to_do(out_dir)
    plan = CascadePlan.read(linclust)
    with atomic_dir(out_dir) as out, working(scratch, out_dir) as tmp:
        target = _subdb(binary, reps_db, keys, Path(tmp) / "input")
        query = _subdb(binary, reps_db, mine, Path(tmp) / "query")
        pref = Path(tmp) / "pref"
        run_tool([binary, "prefilter", f"{query}_ss", f"{target}_ss", pref, *_job_options(plan.prefilter[round_], threads, split)], logger=log)
        # the alignment reads the round's database as query and target, as in foldseek
        # cluster (the same database: a self-match is kept as an identity, whatever its
        # e-value); the prefilter's entries, the shard's queries only, are what it aligns
        run_tool([binary, plan.algorithm, target, target, pref, out / "aln", *_job_options(plan.alignment[round_], threads)], logger=log)
        found = len(db_keys(out / "aln"))
        if found != len(mine):
            raise InternalError(f"expected an alignment entry for each of the shard's {len(mine)} queries, found {found}")
    return len(mine)


def cluster_round(binary: str, reps_db: str | os.PathLike[str] | None, previous: str | os.PathLike[str], searches: Sequence[str | os.PathLike[str]],
                  out_dir: str | os.PathLike[str], *, linclust: str | os.PathLike[str], round_: int, threads: int,
                  scratch: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """Round ``round_``'s ``clust`` over its shards' alignments merged (``mergedbs``):
    writes ``out_dir/clusters``; returns the number of clusters. Every representative of
    ``previous`` must have exactly one shard's alignment entry. The options are
    ``linclust``'s plan (none is read without representatives)."""
    keys = db_keys(Path(previous) / CLUSTERS)
    alns = [Path(s) / "aln" for s in searches]
    searched = np.sort(np.concatenate([db_keys(aln) for aln in alns] or [np.zeros(0, dtype=np.int64)]))
    if not np.array_equal(searched, np.sort(keys)):
        raise InternalError(f"expected the {len(searches)} shards of round {round_} to search the {len(keys)} representatives of "
                            f"{previous} once each, found {len(searched)} alignment entries")  # fmt: skip
    if reps_db is None or not len(keys):
        return _nothing_to_do(out_dir)
    plan = CascadePlan.read(linclust)
    with atomic_dir(out_dir) as out, working(scratch, out_dir) as tmp:
        target = _subdb(binary, reps_db, keys, Path(tmp) / "input")
        aln = Path(tmp) / "aln"
        run_tool([binary, "mergedbs", target, aln, *[a for a in alns if Path(f"{a}.index").exists()], "-v", "1"], logger=log)
        run_tool([binary, "clust", target, aln, out / CLUSTERS, *_job_options(plan.cluster[round_], threads)], logger=log)
        n = len(db_keys(out / CLUSTERS))
    log.info("round %d: %d representatives in %d clusters", round_, len(keys), n)
    return n


def merge_rounds(binary: str, reps_db: str | os.PathLike[str], linclust: str | os.PathLike[str], rounds: Sequence[str | os.PathLike[str]],
                 tsv: str | os.PathLike[str], *, plan: CascadePlan, threads: int) -> Path:  # fmt: skip
    """The clusters of every entry of ``reps_db``: the pre-clustering and the rounds'
    clusterings merged (``mergeclusters``), as foldseek's cluster TSV at ``tsv``."""
    if len(rounds) != plan.rounds:
        raise InternalError(f"expected the clusterings of {plan.rounds} rounds, found {len(rounds)}")
    with tempfile.TemporaryDirectory(prefix="merge-", dir=Path(tsv).parent) as tmp:
        clu = Path(tmp) / "clu"
        steps = [Path(linclust) / CLUSTERS] + [Path(r) / CLUSTERS for r in rounds]
        run_tool([binary, "mergeclusters", reps_db, clu, *steps, *_job_options(plan.mergeclusters, threads)], logger=log)
        run_tool([binary, "createtsv", reps_db, reps_db, clu, tsv, "--threads", str(threads)], logger=log)
    return Path(tsv)
