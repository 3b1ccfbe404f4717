"""Snakemake entry point of rule `generative`: train and evaluate the conditional cardiac model."""

import logging
from pathlib import Path

from regbench.generative.study import run_study

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
run_study(sm.params.scale, Path(sm.output.evaluation).parent, seed=sm.params.seed, threads=sm.threads)
