"""Snakemake entry point of rule `plots`: every figure of one task."""

import logging

from regbench.report.build import write_task_plots

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
write_task_plots(sm.input.dataset, sm.params.metrics, sm.params.registrations, sm.input.board, sm.output[0],
                 methods=sm.params.methods)
