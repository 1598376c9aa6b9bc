# Atlas: filter by confidence and write metadata, embeddings, per-residue pLDDT,
# sharded structure archives with an index, a summary, the resolved configuration, the
# accounting check and a report.


rule assemble_atlas:
    input:
        # the atlas is a view over the store: the published release, not the fold jobs
        release=rules.publish_release.output.receipt,
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
        inputs=rules.plan_chunks.output.inputs,
    output:
        metadata=LAYOUT.atlas.metadata,
        embeddings=LAYOUT.atlas.embeddings,
        plddt=LAYOUT.atlas.plddt,
        structures=directory(LAYOUT.atlas.structures),
        summary=LAYOUT.atlas.summary,
        config=LAYOUT.atlas.config,
    log:
        LAYOUT.log("assemble_atlas"),
    benchmark:
        LAYOUT.benchmark("assemble_atlas")
    conda:
        ENV
    threads: config["atlas"]["threads"]
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: int(config["atlas"]["memory_gb"] * 1536 * attempt),
        runtime=lambda wc, attempt: runtime_minutes(240, attempt),
    params:
        store=str(STORE.root),
        fingerprint=STORE.fingerprint,
        output=config["output"],
        atlas=config["atlas"],
        filter=config["filter"],
        config=config,
    script:
        "../../scripts/assemble_atlas.py"


rule check_accounting:
    input:
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
        metadata=rules.assemble_atlas.output.metadata,
        embeddings=rules.assemble_atlas.output.embeddings,
        plddt=rules.assemble_atlas.output.plddt,
        structures=rules.assemble_atlas.output.structures,
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
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: runtime_minutes(60, attempt),
    params:
        output=config["output"],
    script:
        "../../scripts/check_accounting.py"


rule atlas_report:
    input:
        metadata=rules.assemble_atlas.output.metadata,
        plddt=rules.assemble_atlas.output.plddt,
        structures=rules.assemble_atlas.output.structures,
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
    script:
        "../../scripts/atlas_report.py"
