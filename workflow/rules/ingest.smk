# Ingest: validate every record of every input file, deduplicate identical sequences
# across files, and cut the unique sequences into length-sorted, GPU-sized chunks.


rule read_fasta:
    input:
        fasta=input_fasta,
    output:
        part=temp("results/ingest/parts/{source}.parquet"),
    log:
        "results/logs/read_fasta/{source}.log",
    benchmark:
        "results/benchmarks/read_fasta/{source}.tsv"
    conda:
        ENV
    threads: config["ingest"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 1500 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        source=input_fasta,
        ingest=ingest_params(),
    script:
        "../../scripts/read_fasta.py"


checkpoint plan_chunks:
    input:
        parts=ingest_parts,
    output:
        records="results/ingest/records.parquet",
        sequences="results/ingest/sequences.parquet",
        chunks=directory("results/chunks"),
    log:
        "results/logs/plan_chunks.log",
    benchmark:
        "results/benchmarks/plan_chunks.tsv"
    conda:
        ENV
    threads: config["ingest"]["threads"]
    resources:
        **cpu_site(),
        # DuckDB's limit, plus Arrow batches and DuckDB memory outside its limit
        # (measured peak: limit + ~0.6 GB, bench/RESULTS.md)
        mem_mb=lambda wc, attempt: int(
            (config["ingest"]["memory_gb"] * 1024 * 1.5 + 1024) * attempt
        ),
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        plan=plan_params(),
    script:
        "../../scripts/plan_chunks.py"
