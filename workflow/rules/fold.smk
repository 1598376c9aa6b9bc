# Fold: one job per chunk runs ESMFold (loaded once) over the chunk's sequences and
# writes predictions, embeddings and a structure archive. Resumes after a kill from
# the chunk's partial folder. A fold job reruns when its chunk's content or a setting
# that can change its outputs changed (its params), never for a newer chunk file alone;
# the settings themselves it reads from the config (so that the others are no params).


rule fold_chunk:
    input:
        # content, not time, decides a refold: params.content and params.outputs_key
        chunk=ancient(chunk_file),
    output:
        predictions=LAYOUT.chunk_outputs("{chunk}").predictions,
        embeddings=LAYOUT.chunk_outputs("{chunk}").embeddings,
        structures=LAYOUT.chunk_outputs("{chunk}").structures,
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
        runtime=lambda wc, attempt: fold_runtime_minutes(wc) * attempt,
    params:
        partial=lambda wc: LAYOUT.partial(wc.chunk),
        content=chunk_content,
        outputs_key=FOLD_OUTPUTS_KEY,
    script:
        "../../scripts/fold_chunk.py"
