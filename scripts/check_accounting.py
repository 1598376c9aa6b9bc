"""Rule check_accounting: fail loudly unless every input record is accounted for."""

from pathlib import Path

from foldatlas.accounting import check_accounting
from foldatlas.atlas import AtlasOutputs
from foldatlas.logs import rule_script

with rule_script(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    i = snakemake.input  # noqa: F821
    check_accounting(
        records=i.records,
        sequences=i.sequences,
        outputs=AtlasOutputs(Path(i.metadata).parent, Path(i.metadata), Path(i.embeddings), Path(i.plddt), Path(i.structures), Path(i.summary)),
        report=snakemake.output.report,  # noqa: F821
    )
