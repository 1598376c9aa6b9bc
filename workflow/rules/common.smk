# Config access, input lists and target functions. Every other .smk file reads the
# configuration and the chunk list only through what is defined here.
import os

from foldatlas.chunking import chunk_file_name, read_plan
from foldatlas.cluster import site_resources
from foldatlas.fasta import expand_inputs
from foldatlas.tools import find_binary


wildcard_constraints:
    source=r"\d+",
    chunk=r"\d{6}",


ENV = "../../envs/foldatlas.yaml"

# Expanded once at start-up: a glob matching nothing or a missing file fails here.
INPUT_FASTA = expand_inputs(config["input"]["fasta"])

# External programs are looked for at start-up, not hours later.
FOLDSEEK = (
    find_binary(
        config["foldseek"]["binary"],
        key="foldseek.binary",
        install="Install it from bioconda (conda install -c bioconda foldseek, or run with "
        "--sdm conda: envs/foldseek.yaml), or set foldseek.enabled: false.",
    )
    if config["foldseek"]["enabled"]
    else None
)
MMSEQS = (
    find_binary(
        config["mmseqs"]["binary"],
        key="mmseqs.binary",
        install="Install it (apt-get install mmseqs2, or conda install -c bioconda mmseqs2), "
        "or set mmseqs.enabled: false.",
    )
    if config["mmseqs"]["enabled"]
    else None
)


def foldseek_binary():
    """Resolved path of foldseek (checked at start-up)."""
    return FOLDSEEK


def mmseqs_binary():
    """Resolved path of mmseqs (checked at start-up)."""
    return MMSEQS


def input_fasta(wildcards):
    """The input file behind the {source} wildcard (its index in INPUT_FASTA)."""
    return INPUT_FASTA[int(wildcards.source)]


def ingest_parts(wildcards):
    """One validated Parquet part per input file."""
    return expand(
        "results/ingest/parts/{source}.parquet", source=range(len(INPUT_FASTA))
    )


def ingest_params():
    """Arguments of read_fasta_file taken from the ingest section."""
    c = config["ingest"]
    return {
        "min_length": c["min_length"],
        "max_length": c["max_length"],
        "on_invalid": c["on_invalid"],
    }


def plan_params():
    """Arguments of plan_chunks taken from the ingest and chunks sections."""
    return {
        "budget_seconds": config["chunks"]["gpu_seconds"],
        "max_sequences": config["chunks"]["max_sequences"],
        "cost": dict(config["chunks"]["cost"]),
        "memory_limit_gb": config["ingest"]["memory_gb"],
    }


_PLANS = {}


def chunk_plans():
    """The plan_chunks checkpoint's plan as {chunk id: ChunkPlan}, read once per plan file.

    Input and resource functions of every fold job call this: without the cache, a
    plan of N chunks would be read N times (a DAG of 10^4 chunks took minutes)."""
    chunks_dir = checkpoints.plan_chunks.get().output.chunks
    path = os.path.join(chunks_dir, "plan.tsv")
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = {f"{p.chunk:06d}": p for p in read_plan(chunks_dir)}
    return _PLANS[key]


def planned_chunks():
    """Chunk ids decided by the plan_chunks checkpoint (re-evaluated after it runs)."""
    return list(chunk_plans())


def chunk_file(wildcards):
    """The chunk file behind {chunk}, available once plan_chunks has run."""
    chunks_dir = checkpoints.plan_chunks.get().output.chunks
    return f"{chunks_dir}/{chunk_file_name(int(wildcards.chunk))}"


def chunk_plan(chunk):
    """The plan.tsv row of one chunk."""
    plans = chunk_plans()
    if chunk not in plans:
        raise ValueError(f"chunk {chunk} is not in the plan (results/chunks/plan.tsv)")
    return plans[chunk]


def fold_gpus():
    """GPUs per fold job: none when fold.device is cpu, else one."""
    return 0 if config["fold"]["device"] == "cpu" else 1


def cpu_site():
    """Slurm site settings (partition, account, constraint) of CPU jobs."""
    return site_resources(config["slurm"], gpu=False)


def gpu_site():
    """Slurm site settings of fold jobs (GPU partition and model when they ask for a GPU)."""
    return site_resources(config["slurm"], gpu=fold_gpus() > 0)


def fold_runtime_minutes(wildcards):
    """Runtime asked for a fold job: twice the chunk's estimated GPU time plus 15 min
    for start-up and merging (the caller multiplies by the attempt number)."""
    est = chunk_plan(wildcards.chunk).est_seconds
    return int(15 + 2 * est / 60)


def fold_outputs(wildcards):
    """Predictions of every planned chunk."""
    return expand(
        "results/fold/chunk_{chunk}/predictions.parquet", chunk=planned_chunks()
    )


def final_targets(wildcards):
    """What `snakemake` builds by default, from the stages switched on in config."""
    targets = [
        "results/ingest/records.parquet",
        "results/ingest/sequences.parquet",
        "results/atlas/accounting.json",
    ]
    if config["atlas"]["report"]:
        targets.append("results/report/atlas_report.html")
    if config["foldseek"]["enabled"]:
        targets.append("results/foldseek/clusters.parquet")
        if config["foldseek"]["search"]["targets"]:
            targets.append("results/foldseek/hits.parquet")
    if config["mmseqs"]["enabled"]:
        targets.append("results/mmseqs/clusters.parquet")
    return targets
