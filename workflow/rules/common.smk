# Config access, input lists and target functions. Every other .smk file reads the
# configuration and the chunk list only through what is defined here.
from foldatlas.chunking import chunk_file_name, read_plan
from foldatlas.fasta import expand_inputs


wildcard_constraints:
    source=r"\d+",
    chunk=r"\d{6}",


ENV = "../../envs/foldatlas.yaml"

# Expanded once at start-up: a glob matching nothing or a missing file fails here.
INPUT_FASTA = expand_inputs(config["input"]["fasta"])


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


def planned_chunks():
    """Chunk ids decided by the plan_chunks checkpoint (re-evaluated after it runs)."""
    chunks_dir = checkpoints.plan_chunks.get().output.chunks
    return [f"{p.chunk:06d}" for p in read_plan(chunks_dir)]


def chunk_files(wildcards):
    """Every chunk file of the plan."""
    return [f"results/chunks/chunk_{c}.parquet" for c in planned_chunks()]


def final_targets(wildcards):
    """What `snakemake` builds by default, from the stages switched on in config."""
    targets = [
        "results/ingest/records.parquet",
        "results/ingest/sequences.parquet",
    ]
    targets += chunk_files(wildcards)
    return targets
