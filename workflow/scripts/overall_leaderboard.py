"""Snakemake entry point of rule `overall_leaderboard`: mean task score across tasks."""

from pathlib import Path

import pandas as pd

from regbench.metrics.leaderboard import overall_tables, write_table
from regbench.metrics.ranking import overall_leaderboard

sm = snakemake  # noqa: F821 (injected by Snakemake)
boards = {task: pd.read_csv(path, index_col="method") for task, path in zip(sm.params.tasks, sm.input.tasks)}
overall = overall_leaderboard(boards)
write_table(overall, Path(sm.output.csv).with_suffix(""), title="Overall leaderboard", tables=overall_tables(overall))
