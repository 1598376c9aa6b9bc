# Fold: one job per chunk runs ESMFold (loaded once) over the chunk's sequences and
# writes predictions, embeddings and a structure archive. Resumes after a kill from
# results/fold/partial/chunk_{chunk}/.


rule fold_chunk:
    input:
        chunk=chunk_file,
    output:
        predictions="results/fold/chunk_{chunk}/predictions.parquet",
        embeddings="results/fold/chunk_{chunk}/embeddings.parquet",
        structures="results/fold/chunk_{chunk}/structures.tar.gz",
    log:
        "results/logs/fold_chunk/{chunk}.log",
    benchmark:
        "results/benchmarks/fold_chunk/{chunk}.tsv"
    conda:
        ENV
    threads: config["fold"]["threads"]
    resources:
        **gpu_site(),
        gpu=fold_gpus(),
        mem_mb=lambda wc, attempt: config["fold"]["mem_mb"] * attempt,
        runtime=lambda wc, attempt: fold_runtime_minutes(wc) * attempt,
    params:
        partial="results/fold/partial/chunk_{chunk}",
        fold=config["fold"],
        embeddings=config["embeddings"],
    script:
        "../../scripts/fold_chunk.py"
