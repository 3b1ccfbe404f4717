"""Snakemake entry point of rule `report`: the report page, the HTML leaderboards and the overall figure."""

import logging

from regbench.report.build import Run, write_report

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
runs = [Run(**run) for run in sm.params.runs]
write_report(sm.params.config, dict(zip(sm.params.tasks, sm.input.boards)), sm.input.overall,
             dict(zip(sm.params.tasks, sm.input.plots)), runs, sm.output.html, sm.output.tables, sm.output.overview,
             robustness=sm.input.robustness[0] if sm.input.robustness else None,
             subgroups=dict(zip(sm.params.subgroup_tasks, sm.input.subgroups)),
             generative=sm.input.generative[0] if sm.input.generative else None, claims=sm.input.claims,
             curves=dict(zip(map(tuple, sm.params.training_runs), sm.input.curves)),
             sources=dict(zip(map(tuple, sm.params.training_runs), sm.input.sources)))
