# Atlas: filter by confidence and write metadata, embeddings, per-residue pLDDT,
# sharded structure archives with an index, a summary, the accounting check and a report.


rule assemble_atlas:
    input:
        records=rules.plan_chunks.output.records,
        sequences=rules.plan_chunks.output.sequences,
        predictions=fold_outputs,
    output:
        metadata="results/atlas/metadata.parquet",
        embeddings="results/atlas/embeddings.parquet",
        plddt="results/atlas/plddt.parquet",
        structures=directory("results/atlas/structures"),
        summary="results/atlas/summary.json",
    log:
        "results/logs/assemble_atlas.log",
    benchmark:
        "results/benchmarks/assemble_atlas.tsv"
    conda:
        ENV
    threads: 2
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: int(config["atlas"]["memory_gb"] * 1536 * attempt),
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        atlas=config["atlas"],
        filter=config["filter"],
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
    output:
        report="results/atlas/accounting.json",
    log:
        "results/logs/check_accounting.log",
    benchmark:
        "results/benchmarks/check_accounting.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    script:
        "../../scripts/check_accounting.py"


rule atlas_report:
    input:
        metadata=rules.assemble_atlas.output.metadata,
        summary=rules.assemble_atlas.output.summary,
        accounting=rules.check_accounting.output.report,
    output:
        html=report(
            "results/report/atlas_report.html",
            caption="../report/atlas_report.rst",
            category="Atlas",
        ),
    log:
        "results/logs/atlas_report.log",
    benchmark:
        "results/benchmarks/atlas_report.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **cpu_site(),
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../../scripts/atlas_report.py"
