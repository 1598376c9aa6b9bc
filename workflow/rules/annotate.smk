# Annotate: mmseqs2 sequence clusters of the unique sequences; foldseek databases per
# high-confidence shard and search, one job per checksum bucket of the atlas; Atlas-style
# structural clusters (the best structure of each sequence cluster, clustered by
# foldseek in one job, or, with foldseek.cluster.shards > 1, as a cascade of jobs whose
# rounds are split by query: foldatlas.cascade). Results as sorted Parquet tables.
# Memory and runtime requests follow the input's size (foldatlas.sizing; README
# "Annotation resources"; sized_mem, sized_runtime in common.smk), sized when the
# input exists.


rule mmseqs_split_segments:
    # mmseqs.segments > 1: the unique sequences by length, longest first (foldatlas.segments)
    input:
        sequences=rules.plan_chunks.output.sequences,
    output:
        segments=segment_folders(),
    log:
        LAYOUT.log("mmseqs_split_segments"),
    benchmark:
        LAYOUT.benchmark("mmseqs_split_segments")
    conda:
        ENV
    resources:
        **cpu_site(),
        mem_mb=sized_mem("mmseqs_split_segments", "sequences"),
        runtime=sized_runtime("mmseqs_split_segments", "sequences"),
    params:
        # the segments' folder (all of them written together)
        split=lambda wc, output: os.path.dirname(output.segments[0]),
        segments=mmseqs_segments(),
    script:
        "../../scripts/mmseqs_split_segments.py"


rule mmseqs_cluster_segment:
    # round r: linclust over what is left of segment r
    input:
        remaining=lambda wc: segment_left(wc.round, wc.round),
    output:
        # temporary, as the split's and the assignments' outputs: removed once read (the
        # sequences by the next jobs, the pairs by the merge)
        folder=temp(directory(LAYOUT.segment_round("{round}"))),
        pairs=temp(LAYOUT.segment_round_pairs("{round}")),
    log:
        LAYOUT.log("mmseqs_cluster_segment", "{round}"),
    benchmark:
        LAYOUT.benchmark("mmseqs_cluster_segment", "{round}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["mmseqs"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=sized_mem("mmseqs_cluster_segment", "remaining"),
        runtime=sized_runtime("mmseqs_cluster_segment", "remaining"),
    params:
        binary=config["mmseqs"]["binary"],
        mmseqs=segment_settings(),
        scratch=lambda wc: LAYOUT.scratch(f"mmseqs_cluster_segment/{wc.round}"),
    script:
        "../../scripts/mmseqs_cluster_segment.py"


rule mmseqs_assign_segment:
    # what is left of a later segment, assigned to round r's representatives
    input:
        representatives=lambda wc: LAYOUT.segment_round(wc.round),
        remaining=lambda wc: segment_left(wc.round, wc.segment),
    output:
        folder=temp(directory(LAYOUT.segment_assign("{round}", "{segment}"))),
        pairs=temp(LAYOUT.segment_assign_pairs("{round}", "{segment}")),
    log:
        LAYOUT.log("mmseqs_assign_segment", "{round}_{segment}"),
    benchmark:
        LAYOUT.benchmark("mmseqs_assign_segment", "{round}_{segment}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["mmseqs"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=sized_mem("mmseqs_assign_segment", ["representatives", "remaining"]),
        runtime=sized_runtime("mmseqs_assign_segment", ["representatives", "remaining"]),
    params:
        binary=config["mmseqs"]["binary"],
        mmseqs=segment_settings(),
        scratch=lambda wc: LAYOUT.scratch(
            f"mmseqs_assign_segment/{wc.round}_{wc.segment}"
        ),
    script:
        "../../scripts/mmseqs_assign_segment.py"


rule mmseqs_cluster:
    input:
        unpack(segment_inputs),
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
        mem_mb=sized_mem(sequence_cluster_kind(), "sequences"),
        runtime=sized_runtime(sequence_cluster_kind(), "sequences"),
    params:
        # one linclust job's (None for the merge of segments, which runs no mmseqs)
        binary=mmseqs_cluster_binary(),
        # (no other param: one job's params are those of foldatlas 0.14, so upgrading
        # reruns nothing; the merge works in the segments' folder, mmseqs/segments/merge)
        mmseqs=mmseqs_cluster_settings(),
    script:
        "../../scripts/mmseqs_cluster.py"


rule foldseek_createdb:
    input:
        # one bucket's shards (not waiting for the finish: see foldseek_representatives); without
        # copies (atlas.copy_structures: false) also its index, which points into the store
        structures=rules.assemble_bucket.output.shards,
        index=createdb_index(),
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
        # one bucket's bin shards
        shards=rules.repack_bins.output.shards,
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


rule foldseek_representatives:
    input:
        db=foldseek_dbs,
        # the current buckets' files, not the folder, which may still hold another split's
        # until the finish removes them. No annotation job waits for the finish: a rerun
        # finish would hide the jobs after it from Snakemake's params and input triggers
        # in that run (its BFS skips a job whose inputs from a rerun job are all ancient)
        metadata=metadata_parts,
        seq_clusters=(
            rules.mmseqs_cluster.output.clusters if config["mmseqs"]["enabled"] else []
        ),
    output:
        folder=directory(LAYOUT.foldseek_representatives),
    log:
        LAYOUT.log("foldseek_representatives"),
    benchmark:
        LAYOUT.benchmark("foldseek_representatives")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        # DuckDB, capped at the request and spilling beyond it; entries copied in passes
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=sized_runtime("foldseek_representatives", "db"),
    script:
        "../../scripts/foldseek_representatives.py"


rule foldseek_cluster_linclust:
    input:
        representatives=rules.foldseek_representatives.output.folder,
    output:
        folder=directory(LAYOUT.cascade_linclust),
    log:
        LAYOUT.log("foldseek_cluster_linclust"),
    benchmark:
        LAYOUT.benchmark("foldseek_cluster_linclust")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=sized_mem("foldseek_cluster_linclust", "representatives"),
        runtime=sized_runtime("foldseek_cluster_linclust", "representatives"),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=cascade_settings(),
        scratch=LAYOUT.scratch("foldseek_cluster_linclust"),
    script:
        "../../scripts/foldseek_cluster_linclust.py"


rule foldseek_cluster_search:
    input:
        representatives=rules.foldseek_representatives.output.folder,
        # the rounds' options (plan.json)
        linclust=rules.foldseek_cluster_linclust.output.folder,
        previous=cascade_previous,
    output:
        folder=directory(LAYOUT.cascade_search("{round}", "{shard}")),
    log:
        LAYOUT.log("foldseek_cluster_search", "{round}_{shard}"),
    benchmark:
        LAYOUT.benchmark("foldseek_cluster_search", "{round}_{shard}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=sized_mem("foldseek_cluster_search", "representatives"),
        runtime=sized_runtime("foldseek_cluster_search", "representatives"),
    params:
        binary=config["foldseek"]["binary"],
        shards=cluster_shards(),
        scratch=lambda wc: LAYOUT.scratch(
            f"foldseek_cluster_search/{wc.round}_{wc.shard}"
        ),
    script:
        "../../scripts/foldseek_cluster_search.py"


rule foldseek_cluster_round:
    input:
        representatives=rules.foldseek_representatives.output.folder,
        # the rounds' options (plan.json)
        linclust=rules.foldseek_cluster_linclust.output.folder,
        previous=cascade_previous,
        searches=cascade_searches,
    output:
        folder=directory(LAYOUT.cascade_round("{round}")),
    log:
        LAYOUT.log("foldseek_cluster_round", "{round}"),
    benchmark:
        LAYOUT.benchmark("foldseek_cluster_round", "{round}")
    conda:
        "../../envs/foldseek.yaml"
    threads: config["foldseek"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=sized_mem("foldseek_cluster_round", "representatives"),
        runtime=sized_runtime("foldseek_cluster_round", "representatives"),
    params:
        binary=config["foldseek"]["binary"],
        scratch=lambda wc: LAYOUT.scratch(f"foldseek_cluster_round/{wc.round}"),
    script:
        "../../scripts/foldseek_cluster_round.py"


rule foldseek_cluster:
    input:
        unpack(cascade_inputs),
        representatives=rules.foldseek_representatives.output.folder,
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
        mem_mb=sized_mem(cluster_kind(), "representatives"),
        runtime=sized_runtime(cluster_kind(), "representatives"),
    params:
        binary=config["foldseek"]["binary"],
        foldseek=cluster_settings(),
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
        # the search's settings only: another foldseek key (cluster, threads) reruns no search
        search=config["foldseek"]["search"],
        target_dbs=search_target_prefixes(),
        buckets=lambda wc: atlas_buckets(),
        scratch=lambda wc: LAYOUT.scratch(f"foldseek_search/{wc.bucket}"),
    script:
        "../../scripts/foldseek_search.py"
