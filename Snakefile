# regbench: every method against every task, into leaderboards under results/.
# A table of contents: configuration and validation live in workflow/rules/common.smk, one .smk per stage.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/generative.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/robustness.smk"  # before leaderboard.smk: the claims rule reads the track's tables
include: "workflow/rules/leaderboard.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
