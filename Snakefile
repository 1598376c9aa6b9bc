# foldatlas: from massive protein FASTA sets to an atlas of predicted structures.
# This file is the table of contents; rules live in workflow/rules/, one file per stage,
# and config access and target functions in workflow/rules/common.smk.
import sys

sys.path.insert(0, f"{workflow.basedir}/scripts")

from snakemake.utils import min_version
from foldatlas.config import validate_config

min_version("9.27")


configfile: "config/config.yaml"


# Fill defaults and validate against the schema; errors name the key, value and range.
validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/fold.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/annotate.smk"


# cheap aggregation runs on the submitting node, not as Slurm jobs
localrules:
    all,
    atlas_report,


rule all:
    default_target: True
    input:
        final_targets,
