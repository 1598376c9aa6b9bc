# Fold: one job per chunk (or per package of fold.chunks_per_job chunks) runs ESMFold
# (loaded once) over the chunk's sequences and writes predictions, embeddings and a
# structure archive into the store. Resumes after
# a kill from the chunk's partial folder. Then the release is published. A fold job reruns when its chunk's content or a setting
# that can change its outputs changed (its params), never for a newer chunk file alone;
# the settings themselves it reads from the config (so that the others are no params).


rule fold_chunk:
    input:
        # content, not time, decides a refold: params.content and params.outputs_key
        chunk=ancient(chunk_file),
    output:
        predictions=STORE.chunk_outputs("{chunk}").predictions,
        embeddings=STORE.chunk_outputs("{chunk}").embeddings,
        structures=STORE.chunk_outputs("{chunk}").structures,
    log:
        LAYOUT.log("fold_chunk", "{chunk}"),
    benchmark:
        LAYOUT.benchmark("fold_chunk", "{chunk}")
    conda:
        # a CUDA build of torch (pinned); the CPU stages use ENV
        "../../envs/foldatlas-gpu.yaml"
    threads: config["fold"]["threads"]
    resources:
        **gpu_site(),
        gpu=fold_gpus(),
        mem_mb=lambda wc, attempt: config["fold"]["mem_mb"] * attempt,
        runtime=lambda wc, attempt: runtime_minutes(fold_runtime_minutes(wc), attempt),
    params:
        partial=lambda wc: LAYOUT.partial(wc.chunk),
        content=chunk_content,
        outputs_key=FOLD_OUTPUTS_KEY,
    script:
        "../../scripts/fold_chunk.py"


rule fold_package:
    input:
        # fold.chunks_per_job > 1: several chunks in one job, the model loaded once. The
        # plan's folder, not each chunk file: at 10^5 chunks, resolving every file as an
        # input dominated the DAG's build time (params.content decides a refold)
        chunks=ancient(rules.plan_chunks.output.chunks),
        # the checkpoint's first output: the params read the plan, and a job running on a
        # cluster node evaluates them only with the checkpoint's target among its inputs
        records=ancient(rules.plan_chunks.output.records),
    output:
        receipt=LAYOUT.fold_package("{package}"),
    log:
        LAYOUT.log("fold_package", "{package}"),
    benchmark:
        LAYOUT.benchmark("fold_package", "{package}")
    conda:
        "../../envs/foldatlas-gpu.yaml"
    threads: config["fold"]["threads"]
    resources:
        **gpu_site(),
        gpu=fold_gpus(),
        mem_mb=lambda wc, attempt: config["fold"]["mem_mb"] * attempt,
        runtime=lambda wc, attempt: runtime_minutes(package_minutes(wc), attempt),
    params:
        chunks=package_chunks,
        files=package_chunk_files,
        partial=package_partials,
        content=package_content,
        outputs_key=FOLD_OUTPUTS_KEY,
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
    script:
        "../../scripts/fold_package.py"


rule publish_bucket:
    input:
        unpack(fold_outputs),
        chunks=rules.plan_chunks.output.chunks,
        sequences=rules.plan_chunks.output.sequences,
        inputs=rules.plan_chunks.output.inputs,
    output:
        # a job's record, not a product: what it staged in the store for publish_release
        part=temp(LAYOUT.release_part("{bucket}")),
    log:
        LAYOUT.log("publish_bucket", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("publish_bucket", "{bucket}")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        # reads each of its chunks' seal (its files' SHA-256, made by its fold job), holds
        # one chunk's checksums and one batch; DuckDB sorts the bucket's tables within its
        # share of the memory and spills to scratch
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        scratch=lambda wc: LAYOUT.scratch(f"publish_bucket/{wc.bucket}"),
    script:
        "../../scripts/publish_bucket.py"


rule publish_release:
    input:
        parts=release_parts,
        chunks=rules.plan_chunks.output.chunks,
        sequences=rules.plan_chunks.output.sequences,
        inputs=rules.plan_chunks.output.inputs,
    output:
        receipt=LAYOUT.release,
    log:
        LAYOUT.log("publish_release"),
    benchmark:
        LAYOUT.benchmark("publish_release")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        # links the staged files into the release folder and counts the release's
        # sequences (one DuckDB aggregate over sequences.parquet); hashes nothing
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(60, attempt),
    params:
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
    script:
        "../../scripts/publish_release.py"
