"""Snakemake entry point of rule `dataset`: generate one synthetic task as a Learn2Reg folder."""

import logging

import torch

from regbench.tasks.generate import make_task

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
torch.set_num_threads(sm.threads)  # parallel jobs must not oversubscribe the cores
make_task(sm.wildcards.task, sm.output[0], scale=sm.params.scale, seed=sm.params.seed)
logging.info("wrote %s", sm.output[0])
