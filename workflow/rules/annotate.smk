# Annotate: foldseek clustering and search of the high-confidence structures, mmseqs2
# clustering of the unique sequences. Results as sorted Parquet tables.


rule foldseek_createdb:
    input:
        structures=rules.assemble_atlas.output.structures,
    output:
        db=directory("results/foldseek/db"),
    log:
        "results/logs/foldseek_createdb.log",
    benchmark:
        "results/benchmarks/foldseek_createdb.tsv"
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        binary=lambda wc: foldseek_binary(),
    script:
        "../../scripts/foldseek_createdb.py"


rule foldseek_cluster:
    input:
        db=rules.foldseek_createdb.output.db,
        metadata=rules.assemble_atlas.output.metadata,
    output:
        clusters="results/foldseek/clusters.parquet",
    log:
        "results/logs/foldseek_cluster.log",
    benchmark:
        "results/benchmarks/foldseek_cluster.tsv"
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        binary=lambda wc: foldseek_binary(),
        foldseek=config["foldseek"],
    script:
        "../../scripts/foldseek_cluster.py"


rule foldseek_search:
    input:
        db=rules.foldseek_createdb.output.db,
    output:
        hits="results/foldseek/hits.parquet",
    log:
        "results/logs/foldseek_search.log",
    benchmark:
        "results/benchmarks/foldseek_search.tsv"
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 480 * attempt,
    params:
        binary=lambda wc: foldseek_binary(),
        search=config["foldseek"]["search"],
    script:
        "../../scripts/foldseek_search.py"


rule mmseqs_cluster:
    input:
        sequences=rules.plan_chunks.output.sequences,
    output:
        clusters="results/mmseqs/clusters.parquet",
    log:
        "results/logs/mmseqs_cluster.log",
    benchmark:
        "results/benchmarks/mmseqs_cluster.tsv"
    conda:
        "../../envs/foldseek.yaml"
    threads: config["mmseqs"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        binary=lambda wc: mmseqs_binary(),
        mmseqs=config["mmseqs"],
    script:
        "../../scripts/mmseqs_cluster.py"
