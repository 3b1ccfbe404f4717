"""What a Snakemake dry run (``snakemake -n``) plans, read from the job listing it prints: the workflow's tests
and the paper-scale cost table (``benchmarks/paper_costs.py``) check the workflow's own plan through it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_JOB = re.compile(r"^(?:local)?rule (\w+):$", flags=re.MULTILINE)
_FIELD = re.compile(r"^\s+(\w+): (.*)$", flags=re.MULTILINE)


@dataclass(frozen=True)
class PlannedJob:
    """One job of the plan: its rule, wildcards, threads and resources (values as Snakemake prints them)."""

    rule: str
    wildcards: dict[str, str]
    threads: int
    resources: dict[str, str]


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: rule -> number of jobs."""
    counts = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", ")) if text else {}


def planned_jobs(output: str) -> list[PlannedJob]:
    """Every job block of a dry run's listing, in the order printed (the threads Snakemake leaves out are 1)."""
    starts = list(_JOB.finditer(output))
    jobs = []
    for start, end in zip(starts, [*starts[1:], None]):
        block = output[start.end():end.start() if end else len(output)]
        fields = dict(_FIELD.findall(block))
        jobs.append(PlannedJob(start.group(1), _pairs(fields.get("wildcards", "")), int(fields.get("threads", 1)),
                               _pairs(fields.get("resources", ""))))
    return jobs
