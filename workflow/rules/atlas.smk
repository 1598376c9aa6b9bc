# Atlas: filter by confidence and write metadata, embeddings, per-residue pLDDT,
# sharded structure archives with an index, one checksum bucket a job (assemble_bucket,
# then bucket_metadata, which joins members to representatives in any bucket; with
# atlas.bins, repack_bins copies the bucket's structures into shards per Atlas bin); then a
# summary, the resolved configuration, the accounting (one check_bucket job a bucket,
# then check_accounting adds them up against the input count) and a report.


rule assemble_bucket:
    input:
        # the atlas is a view over the store: the published release, not the fold jobs
        release=rules.publish_release.output.receipt,
        sequences=rules.plan_chunks.output.sequences,
    output:
        shards=directory(LAYOUT.atlas.shards("{bucket}")),
        index=LAYOUT.atlas.part(LAYOUT.atlas.index, "{bucket}"),
        plddt=LAYOUT.atlas.part(LAYOUT.atlas.plddt, "{bucket}"),
        embeddings=LAYOUT.atlas.part(LAYOUT.atlas.embeddings, "{bucket}"),
        # kept (not temp): with members every bucket_metadata job reads every bucket's,
        # and a missing one would run every assemble_bucket job again
        predictions=LAYOUT.atlas_predictions("{bucket}"),
        part=LAYOUT.atlas_part("{bucket}"),
    log:
        LAYOUT.log("assemble_bucket", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("assemble_bucket", "{bucket}")
    conda:
        ENV
    threads: config["atlas"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: int(config["atlas"]["memory_gb"] * 1536 * attempt),
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        output=config["output"],
        atlas=atlas_settings(),
        filter=config["filter"],
        structures=config["structures"],
        outputs_key=FOLD_OUTPUTS_KEY,
    script:
        "../../scripts/assemble_bucket.py"


rule bucket_metadata:
    input:
        unpack(representative_predictions),
        part=rules.assemble_bucket.output.part,
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
        inputs=rules.plan_chunks.output.inputs,
    output:
        metadata=LAYOUT.atlas.part(LAYOUT.atlas.metadata, "{bucket}"),
    log:
        LAYOUT.log("bucket_metadata", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("bucket_metadata", "{bucket}")
    conda:
        ENV
    threads: config["atlas"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: int(config["atlas"]["memory_gb"] * 1536 * attempt),
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        output=config["output"],
        atlas=atlas_settings(),
    script:
        "../../scripts/bucket_metadata.py"


rule repack_bins:
    input:
        # the bucket's structures where its index says they are (shards, or the store's
        # fold archives without copies), and the bin of each
        structures=rules.assemble_bucket.output.shards,
        index=rules.assemble_bucket.output.index,
        predictions=rules.assemble_bucket.output.predictions,
    output:
        shards=directory(LAYOUT.atlas.bin_shards("{bucket}")),
        index=LAYOUT.atlas.part(LAYOUT.atlas.bins_index, "{bucket}"),
    log:
        LAYOUT.log("repack_bins", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("repack_bins", "{bucket}")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(120, attempt),
    params:
        output=config["output"],
        shard_size=config["atlas"]["shard_size"],
    script:
        "../../scripts/repack_bins.py"


rule assemble_atlas:
    input:
        unpack(atlas_parts),
        release=rules.publish_release.output.receipt,
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
        inputs=rules.plan_chunks.output.inputs,
    output:
        summary=LAYOUT.atlas.summary,
        config=LAYOUT.atlas.config,
    log:
        LAYOUT.log("assemble_atlas"),
    benchmark:
        LAYOUT.benchmark("assemble_atlas")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(60, attempt),
    params:
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        output=config["output"],
        filter=config["filter"],
        config=config,
    script:
        "../../scripts/assemble_atlas.py"


rule check_bucket:
    input:
        # after the finish, which leaves only this atlas's buckets in its folders
        summary=rules.assemble_atlas.output.summary,
        metadata=rules.bucket_metadata.output.metadata,
        index=rules.assemble_bucket.output.index,
        # the report's figures of the bucket read its per-residue pLDDT too
        plddt=rules.assemble_bucket.output.plddt,
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
    output:
        report=LAYOUT.bucket_accounting("{bucket}"),
    log:
        LAYOUT.log("check_bucket", "{bucket}"),
    benchmark:
        LAYOUT.benchmark("check_bucket", "{bucket}")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(60, attempt),
    params:
        output=config["output"],
    script:
        "../../scripts/check_bucket.py"


rule check_accounting:
    input:
        buckets=bucket_accounting,
        summary=rules.assemble_atlas.output.summary,
        inputs=rules.plan_chunks.output.inputs,
    output:
        report=LAYOUT.accounting,
    log:
        LAYOUT.log("check_accounting"),
    benchmark:
        LAYOUT.benchmark("check_accounting")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(30, attempt),
    params:
        output=config["output"],
    script:
        "../../scripts/check_accounting.py"


rule atlas_report:
    input:
        # what each bucket shows (check_bucket reads its files for the accounting)
        buckets=bucket_accounting,
        summary=rules.assemble_atlas.output.summary,
        config=rules.assemble_atlas.output.config,
        accounting=rules.check_accounting.output.report,
    output:
        html=report(
            LAYOUT.report,
            caption="../report/atlas_report.rst",
            category="Atlas",
        ),
    log:
        LAYOUT.log("atlas_report"),
    benchmark:
        LAYOUT.benchmark("atlas_report")
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(30, attempt),
    params:
        output=config["output"],
    script:
        "../../scripts/atlas_report.py"
