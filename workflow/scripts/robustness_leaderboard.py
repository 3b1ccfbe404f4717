"""Snakemake entry point of rule `robustness_leaderboard`: the robustness track of every task and method."""

from pathlib import Path

import pandas as pd

from regbench import io
from regbench.metrics.adversarial import robustness_summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
summary = robustness_summary({(task, method): pd.read_csv(path)
                              for (task, method), path in zip(sm.params.runs, sm.input, strict=True)})
with io.atomic_path(Path(sm.output.csv)) as tmp:
    summary.to_csv(tmp, index=False)
with io.atomic_path(Path(sm.output.md)) as tmp:
    tmp.write_text("# Robustness: mean accuracy on clean pairs, under random and under adversarial perturbation "
                   "chains of each budget\n\n" + summary.to_markdown(index=False, floatfmt=".4g") + "\n")
