# Annotate: foldseek clustering and search of the high-confidence structures, mmseqs2
# clustering of the unique sequences. Results as sorted Parquet tables.


rule foldseek_createdb:
    input:
        structures=rules.assemble_atlas.output.structures,
    output:
        db=directory(LAYOUT.foldseek_db),
    log:
        LAYOUT.log("foldseek_createdb"),
    benchmark:
        LAYOUT.benchmark("foldseek_createdb")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        binary=config["foldseek"]["binary"],
    script:
        "../../scripts/foldseek_createdb.py"


rule foldseek_cluster:
    input:
        db=rules.foldseek_createdb.output.db,
        metadata=rules.assemble_atlas.output.metadata,
    output:
        clusters=LAYOUT.foldseek_clusters,
    log:
        LAYOUT.log("foldseek_cluster"),
    benchmark:
        LAYOUT.benchmark("foldseek_cluster")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(240, attempt),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=config["foldseek"],
    script:
        "../../scripts/foldseek_cluster.py"


rule foldseek_search:
    input:
        db=rules.foldseek_createdb.output.db,
    output:
        hits=LAYOUT.foldseek_hits,
    log:
        LAYOUT.log("foldseek_search"),
    benchmark:
        LAYOUT.benchmark("foldseek_search")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(480, attempt),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=config["foldseek"],
    script:
        "../../scripts/foldseek_search.py"


rule mmseqs_cluster:
    input:
        sequences=rules.plan_chunks.output.sequences,
    output:
        clusters=LAYOUT.mmseqs_clusters,
    log:
        LAYOUT.log("mmseqs_cluster"),
    benchmark:
        LAYOUT.benchmark("mmseqs_cluster")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["mmseqs"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(240, attempt),
    params:
        binary=config["mmseqs"]["binary"],
        mmseqs=config["mmseqs"],
    script:
        "../../scripts/mmseqs_cluster.py"
