"""Snakemake entry point of rule `claims`: the seed papers' claims checked on the run's results."""

from pathlib import Path

import pandas as pd

from regbench import io
from regbench.metrics.claims import claims_markdown, claims_table
from regbench.metrics.leaderboard import load_metrics
from regbench.pretrained import read_provenance

sm = snakemake  # noqa: F821 (injected by Snakemake)
capture = Path(sm.params.capture_range)
parameters: dict[str, dict[str, int]] = {}
for (task, method), source in zip(sm.params.training_runs, sm.input.sources, strict=True):
    count = read_provenance(source)["parameters"]
    if count is not None:
        parameters.setdefault(task, {})[method] = count
tracks: dict[str, list[pd.DataFrame]] = {}
for (task, method), path in zip(sm.params.robustness_runs, sm.input.robustness, strict=True):
    tracks.setdefault(task, []).append(pd.read_csv(path).assign(method=method))
robustness = {task: pd.concat(tables, ignore_index=True) for task, tables in tracks.items()}
table = claims_table({task: load_metrics(paths) for task, paths in sm.params.metrics.items()},
                     instance_rows=dict(sm.params.instance_rows),
                     capture_range=pd.read_csv(capture) if capture.is_file() else None,
                     generative=pd.read_csv(sm.input.generative[0]) if sm.input.generative else None,
                     cohort_in_run=sm.params.cohort, parameters=parameters, robustness=robustness,
                     variants={name: (v["method"], v["settings"]) for name, v in sm.params.variants.items()})
with io.atomic_path(sm.output.csv) as tmp:
    table.to_csv(tmp, index=False)
with io.atomic_path(sm.output.md) as tmp:
    tmp.write_text(claims_markdown(table, sm.params.tasks))
