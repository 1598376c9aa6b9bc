# Ingest: validate every record of every input file, deduplicate identical sequences
# across files, leave out those the store has folded, and cut the new ones into
# length-sorted, GPU-sized chunks, each within one checksum bucket, numbered after the
# store's last chunk. With ingest.bucket_digits, each file's records are split by
# checksum bucket and one plan_bucket job plans each bucket; plan_chunks then only
# numbers their chunks and joins their tables.


rule read_fasta:
    input:
        fasta=input_fasta,
    output:
        # ingest.bucket_digits > 0: a folder of one part per checksum bucket
        part=ingest_part_output(),
        counted=temp(LAYOUT.ingest_count("{source}")),
    log:
        LAYOUT.log("read_fasta", "{source}"),
    benchmark:
        LAYOUT.benchmark("read_fasta", "{source}")
    conda:
        ENV
    threads: config["ingest"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 1500 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        source=input_fasta,
        ingest=ingest_settings(),
    script:
        "../../scripts/read_fasta.py"


rule plan_bucket:
    input:
        parts=ingest_parts,
    output:
        plan=temp(directory(LAYOUT.planned_bucket("{bucket}"))),
    log:
        LAYOUT.log("plan_bucket", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("plan_bucket", "{bucket}")
    conda:
        ENV
    threads: config["ingest"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: int(
            (config["ingest"]["memory_gb"] * 1024 * 1.5 + 1024) * attempt
        ),
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        ingest=ingest_settings(),
        chunks=plan_settings(),
        scratch=lambda wc: LAYOUT.scratch(f"plan_bucket/{wc.bucket}"),
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        outputs_key=FOLD_OUTPUTS_KEY,
        release=config["store"]["release"],
    script:
        "../../scripts/plan_bucket.py"


checkpoint plan_chunks:
    input:
        # ingest.bucket_digits > 0: the plan_bucket folders instead of the parts
        unpack(plan_inputs),
        counts=ingest_counts,
    output:
        records=LAYOUT.records,
        sequences=LAYOUT.sequences,
        chunks=directory(LAYOUT.chunks),
        inputs=LAYOUT.inputs,
    log:
        LAYOUT.log("plan_chunks"),
    benchmark:
        LAYOUT.benchmark("plan_chunks")
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
        runtime=lambda wc, attempt: runtime_minutes(240, attempt),
    params:
        ingest=ingest_settings(),
        chunks=plan_settings(),
        scratch=LAYOUT.scratch("plan_chunks"),
        # the store's part for this model; another fingerprint plans again
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        outputs_key=FOLD_OUTPUTS_KEY,
        release=config["store"]["release"],
        # ingest.redundancy runs this program
        mmseqs=config["mmseqs"]["binary"],
    script:
        "../../scripts/plan_chunks.py"
