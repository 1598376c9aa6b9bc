# Annotate: mmseqs2 sequence clusters of the unique sequences; foldseek databases per
# high-confidence shard and search, one job per checksum bucket of the atlas; Atlas-style
# structural clusters (the best structure of each sequence cluster, clustered by
# foldseek). Results as sorted Parquet tables.
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
        # one bucket's shards, once the atlas is finished (stale buckets removed); without
        # copies (atlas.copy_structures: false) also its index, which points into the store
        structures=rules.assemble_bucket.output.shards,
        index=createdb_index(),
        summary=ancient(str(rules.assemble_atlas.output.summary)),
        # the checkpoint's first output: params.buckets reads the plan, and a job on a
        # cluster node (or a bucket's file asked for alone) needs it among its inputs
        records=ancient(rules.plan_chunks.output.records),
    output:
        db=directory(LAYOUT.foldseek_bucket_db("{bucket}")),
    log:
        LAYOUT.log("foldseek_createdb", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("foldseek_createdb", "{bucket}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=sized_runtime("foldseek_createdb", createdb_input()),
    params:
        binary=config["foldseek"]["binary"],
        buckets=lambda wc: atlas_buckets(),
        # without copies (params derived from the input: the index's change, not these,
        # makes the job run again): the temporary shards' size, and what the index's
        # archive paths are relative to, atlas/ above structures/<bucket>
        shard_size=lambda wc, input: config["atlas"]["shard_size"],
        atlas=lambda wc, input: os.path.dirname(os.path.dirname(input.structures)),
    script:
        "../../scripts/foldseek_createdb.py"


rule foldseek_bins_db:
    input:
        # one bucket's bin shards, once the atlas is finished (stale buckets removed)
        shards=rules.repack_bins.output.shards,
        summary=ancient(str(rules.assemble_atlas.output.summary)),
        records=ancient(rules.plan_chunks.output.records),
    output:
        db=directory(LAYOUT.foldseek_bucket_bins_db("{bucket}")),
    log:
        LAYOUT.log("foldseek_bins_db", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("foldseek_bins_db", "{bucket}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=sized_runtime("foldseek_bins_db", "shards"),
    params:
        binary=config["foldseek"]["binary"],
        buckets=lambda wc: atlas_buckets(),
    script:
        "../../scripts/foldseek_bins_db.py"


rule foldseek_cluster:
    input:
        db=foldseek_dbs,
        summary=ancient(str(rules.assemble_atlas.output.summary)),
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


rule foldseek_target_db:
    input:
        target=search_target,
    output:
        db=directory(LAYOUT.foldseek_target_db("{target}")),
    log:
        LAYOUT.log("foldseek_target_db", "{target}"),
    benchmark:
        LAYOUT.benchmark("foldseek_target_db", "{target}")
    wildcard_constraints:
        # another number has no rule (an input function's error would be hidden)
        target=structure_target_numbers(),
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=sized_runtime("foldseek_target_db", "target"),
    params:
        binary=config["foldseek"]["binary"],
        # the target as configured: another target under the same number is made again
        # (also when --rerun-triggers leaves out input)
        target=search_target,
    script:
        "../../scripts/foldseek_target_db.py"


rule foldseek_search:
    input:
        db=rules.foldseek_createdb.output.db,
        targets=search_target_dbs,
        records=ancient(rules.plan_chunks.output.records),  # as foldseek_createdb's
    output:
        hits=LAYOUT.foldseek_hits_part("{bucket}"),
    log:
        LAYOUT.log("foldseek_search", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("foldseek_search", "{bucket}")
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
        target_dbs=search_target_prefixes(),
        buckets=lambda wc: atlas_buckets(),
        scratch=lambda wc: LAYOUT.scratch(f"foldseek_search/{wc.bucket}"),
    script:
        "../../scripts/foldseek_search.py"
