"""Snakemake entry point of rule `claims`: the seed papers' claims checked on the run's results."""

from pathlib import Path

import pandas as pd

from regbench import io
from regbench.metrics.claims import claims_markdown, claims_table
from regbench.metrics.leaderboard import load_metrics

sm = snakemake  # noqa: F821 (injected by Snakemake)
capture = Path(sm.params.capture_range)
table = claims_table({task: load_metrics(paths) for task, paths in sm.params.metrics.items()},
                     instance_rows=dict(sm.params.instance_rows),
                     capture_range=pd.read_csv(capture) if capture.is_file() else None,
                     generative=pd.read_csv(sm.input.generative[0]) if sm.input.generative else None,
                     cohort_in_run=sm.params.cohort)
with io.atomic_path(sm.output.csv) as tmp:
    table.to_csv(tmp, index=False)
with io.atomic_path(sm.output.md) as tmp:
    tmp.write_text(claims_markdown(table, sm.params.tasks))
