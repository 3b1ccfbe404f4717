"""Snakemake entry point of rule `leaderboard`: rank every method on one task."""

from pathlib import Path

from regbench.metrics.leaderboard import load_metrics, not_scored, task_leaderboard, task_tables, write_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
metrics = dict(sm.params.metrics)  # method -> its metrics.csv in the task's evaluate output
board = task_leaderboard(load_metrics(metrics))
write_table(board, Path(sm.output.csv).with_suffix(""), title=f"Leaderboard: {sm.wildcards.task}",
            tables=task_tables(board), notes=not_scored(metrics))
