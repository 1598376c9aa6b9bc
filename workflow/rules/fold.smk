# Fold: one job per chunk runs ESMFold (loaded once) over the chunk's sequences and
# writes predictions, embeddings and a structure archive. Resumes after a kill from
# the chunk's partial folder.


rule fold_chunk:
    input:
        chunk=chunk_file,
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
        fold=config["fold"],
        embeddings=config["embeddings"],
        structures=config["structures"],
    script:
        "../../scripts/fold_chunk.py"
