# The whole job: corpora -> (training) -> estimates -> metrics, tables, plots, report.
#   snakemake --cores all                       # default config (a 2-core CPU; runtime in the README)
#   snakemake --cores all ablations             # MIST design ablations (not needed by the tables)
#   snakemake --cores all consistency           # MINDE's self-consistency tests on digits (not in all)
#   snakemake all --workflow-profile profiles/slurm --configfile config/paper.yaml   # paper scale, SLURM
from snakemake.utils import min_version, validate

min_version("8.0")


# The default config only when none is given: `--configfile X` then means X alone,
# not X deep-merged over the default (which would leak the default's corpora in).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpora.smk"
include: "workflow/rules/metadataset.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/estimate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/independence.smk"
include: "workflow/rules/cmi.smk"
include: "workflow/rules/consistency.smk"
include: "workflow/rules/claims.smk"


# A training-only config (no estimators, e.g. config/pretrain_mist.yaml) has the models as its job.
rule all:
    input:
        (
            [rules.tables.output, rules.plots.output, rules.config_used.output, independence_outputs(), cmi_outputs(), CLAIMS_OUTPUTS]
            if ESTIMATORS
            else rules.models.input
        ),
    default_target: True


# MIST design ablations on the IMD validation split (config key `ablation`): not needed by the
# paper's tables, so outside `all`.
rule ablations:
    input:
        ablation_outputs(),


# MINDE's self-consistency tests on real images (config key `consistency`), every configured
# method: outside `all` for their cost (docs/benchmark.md, self-consistency).
rule consistency:
    input:
        consistency_outputs(),


# The MIST paper's claims (in `all` too): `snakemake --cores all claims`.
rule claims:
    input:
        CLAIMS_OUTPUTS,
