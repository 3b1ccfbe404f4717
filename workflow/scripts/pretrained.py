"""Snakemake entry point of rule `pretrained`: the run's trained models in the layout the package ships
(``regbench.pretrained``), each with its record and how it was made."""

import datetime
import logging
from pathlib import Path

import pandas as pd

from regbench import pretrained
from regbench.report.environment import regbench_commit

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
made = {"command": sm.params.command, "config": sm.params.config, "commit": regbench_commit(),
        "date": datetime.date.today().isoformat()}
for row, provenance, model, curve, benchmark in zip(sm.params.rows, sm.input.provenance, sm.input.models,
                                                    sm.input.curves, sm.input.benchmarks, strict=True):
    measured = pd.read_csv(benchmark, sep="\t").iloc[-1]  # Snakemake's benchmark: wall seconds and CPU time
    cost = {"train_wall_s": round(float(measured["s"]), 1), "train_cpu_s": round(float(measured["cpu_time"]), 1)}
    pretrained.export(Path(provenance), row, Path(model), Path(curve), Path(sm.output[0]).parent, {**made, **cost})
    logging.info("exported %s", model)
