"""Snakemake entry point of rule `leaderboard`: rank every method on one task."""

from pathlib import Path

from regbench.metrics.leaderboard import load_metrics, task_leaderboard, write_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
board = task_leaderboard(load_metrics(dict(sm.input.items())))
write_table(board, Path(sm.output.csv).with_suffix(""), title=f"Leaderboard: {sm.wildcards.task}")
