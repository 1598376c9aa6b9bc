# Annotate: mmseqs2 sequence clusters of the unique sequences; foldseek databases per
# high-confidence shard, Atlas-style structural clusters (the best structure of each
# sequence cluster, clustered by foldseek) and search. Results as sorted Parquet tables.
# Memory and runtime requests follow the input's size (foldatlas.sizing; README
# "Annotation resources"; sized_mem, sized_runtime in common.smk), sized when the
# input exists.


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
        mem_mb=sized_mem("mmseqs_cluster", "sequences"),
        runtime=sized_runtime("mmseqs_cluster", "sequences"),
    params:
        binary=config["mmseqs"]["binary"],
        mmseqs=config["mmseqs"],
    script:
        "../../scripts/mmseqs_cluster.py"


rule foldseek_createdb:
    input:
        # every bucket's shards, and the finished atlas (stale buckets removed)
        structures=atlas_shards,
        summary=rules.assemble_atlas.output.summary,
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
        runtime=sized_runtime("foldseek_createdb", "structures"),
    params:
        binary=config["foldseek"]["binary"],
        structures=LAYOUT.atlas.structures,
    script:
        "../../scripts/foldseek_createdb.py"


rule foldseek_cluster:
    input:
        db=rules.foldseek_createdb.output.db,
        summary=rules.assemble_atlas.output.summary,
        seq_clusters=(
            rules.mmseqs_cluster.output.clusters if config["mmseqs"]["enabled"] else []
        ),
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
        mem_mb=sized_mem("foldseek_cluster", "db"),
        runtime=sized_runtime("foldseek_cluster", "db"),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=config["foldseek"],
        output=config["output"],
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
        mem_mb=sized_mem("foldseek_search", "db"),
        runtime=sized_runtime("foldseek_search", "db"),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=config["foldseek"],
    script:
        "../../scripts/foldseek_search.py"
