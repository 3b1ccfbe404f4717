"""Snakemake entry point of rule `train`: fit a learning method on a task's training pairs, save its state."""

import logging
from pathlib import Path

from regbench.dataset import read_dataset
from regbench.registry import get_method
from regbench.runner import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
method = get_method(sm.wildcards.method, scale=sm.params.scale, seed=sm.params.seed, threads=sm.threads,
                    device=sm.params.device, **sm.params.overrides)
train(method, read_dataset(sm.input.dataset), Path(sm.output.model), Path(sm.params.workdir), Path(sm.output.curve))
