"""Snakemake entry point of rule `robustness`: the adversarial robustness track of one method on one task."""

import logging
from pathlib import Path

from regbench import io
from regbench.dataset import read_dataset
from regbench.job_exit import exit_job
from regbench.registry import loaded_method
from regbench.robustness import SearchSettings
from regbench.robustness.track import robustness_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
method = loaded_method(sm.params.method, sm.input.model, scale=sm.params.scale, seed=sm.params.seed,
                       threads=sm.threads, device=sm.params.device, **sm.params.overrides)
track = sm.params.track
table = robustness_table(method, read_dataset(sm.input.dataset), split=sm.params.split, pairs=track["pairs"],
                         budgets=track["budgets"], settings=SearchSettings(draws=track["draws"],
                                                                           evaluations=track["evaluations"],
                                                                           seed=sm.params.seed))
with io.atomic_path(Path(sm.output[0])) as tmp:
    table.to_csv(tmp, index=False, na_rep="NaN")
exit_job()  # skips the interpreter teardown (regbench.job_exit)
