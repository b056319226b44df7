# qdff: CP2K AIMD of a quantum dot -> data set -> frame selection -> ML force fields
# -> validation -> HTML report. One config file per QD system:
#   snakemake --profile profiles/local --configfile config/demo.yaml
from snakemake.utils import min_version

min_version("9.0")


# The demo config only when none is given: a `configfile:` directive would be merged
# *under* the user's --configfile, so keys the user left out would come from the demo
# instead of the documented defaults.
if not config:

    configfile: f"{workflow.basedir}/config/demo.yaml"


include: "rules/common.smk"
include: "rules/structure.smk"


# imported data (config data.source cp2k or extxyz): the data set comes from the declared files,
# and no relaxation or AIMD job is part of the DAG
if IMPORTED:

    include: "rules/import.smk"

else:

    include: "rules/aimd.smk"
    include: "rules/dataset.smk"


include: "rules/select.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/mlmd.smk"
include: "rules/report.smk"


if config["active_learning"]["enabled"]:

    include: "rules/active_learning.smk"


if config["vibrations"]["enabled"]:

    include: "rules/vibrations.smk"


# Quick bookkeeping rules run on the submitting host, never as cluster jobs.
localrules:
    all,
    build_structure,
    write_cp2k_input,
    collect_metrics,
    render_report,
    render_index,


rule all:
    default_target: True
    input:
        f"results/{SYSTEM}/report.html",
        "results/index.html",
        selection_targets(SYSTEM),
        vibration_targets(SYSTEM) if config["vibrations"]["enabled"] else [],
