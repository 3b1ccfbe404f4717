"""Snakemake entry point of rule `subgroups`: every method's accuracy per subgroup of a task's subjects."""

from pathlib import Path

from regbench.metrics.leaderboard import case_values, load_metrics
from regbench.metrics.subgroups import pair_subgroups, subgroup_table, write_subgroups

sm = snakemake  # noqa: F821 (injected by Snakemake)
cases = case_values(load_metrics(dict(sm.params.metrics)))
pairs = sorted(set(cases.index.get_level_values("pair")))
groups = pair_subgroups(Path(sm.input.dataset) / f"{sm.wildcards.task}_dataset.json", pairs)
write_subgroups(subgroup_table(cases, groups), sm.output.csv, sm.output.md)
