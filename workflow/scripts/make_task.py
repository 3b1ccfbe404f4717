"""Snakemake entry point of rule `dataset`: generate one synthetic task as a Learn2Reg folder."""

import logging

from regbench.tasks.generate import make_task

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821 (injected by Snakemake)
make_task(snakemake.wildcards.task, snakemake.output[0], scale=snakemake.params.scale,  # noqa: F821
          seed=snakemake.params.seed)  # noqa: F821
logging.info("wrote %s", snakemake.output[0])  # noqa: F821
