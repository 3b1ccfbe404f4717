"""Reading a Snakemake dry run's listing: job counts, and each job's rule, wildcards, threads and resources."""

from __future__ import annotations

from regbench.dry_run import PlannedJob, job_counts, planned_jobs

LISTING = """Building DAG of jobs...
Job stats:
job         count
--------  -------
all             1
register        2
total           3


[Thu Dec  3 22:49:45 2026]
rule register:
    input: results/data/thorax_ct
    output: results/registrations/thorax_ct/affine
    jobid: 13
    wildcards: task=thorax_ct, method=affine
    threads: 2
    resources: tmpdir=<TBD>, mem_mb=2000, mem_mib=1908, runtime=10, gpu=0
Shell command: None

[Thu Dec  3 22:49:45 2026]
rule register:
    wildcards: task=cardiac_mr, method=identity
    resources: tmpdir=<TBD>, mem_mb=1000, runtime=10

[Thu Dec  3 22:49:45 2026]
localrule all:
    input: results/leaderboard/overall.csv
    jobid: 0
    resources: mem_mb=<TBD>
"""


def test_job_counts_read_the_job_stats_table_without_its_total():
    assert job_counts(LISTING) == {"all": 1, "register": 2}


def test_every_job_block_is_read_with_its_wildcards_threads_and_resources():
    jobs = planned_jobs(LISTING)
    assert jobs[0] == PlannedJob("register", {"task": "thorax_ct", "method": "affine"}, 2,
                                 {"tmpdir": "<TBD>", "mem_mb": "2000", "mem_mib": "1908", "runtime": "10", "gpu": "0"})
    assert jobs[1].threads == 1 and jobs[1].resources["mem_mb"] == "1000"  # threads 1 goes unprinted
    assert jobs[2] == PlannedJob("all", {}, 1, {"mem_mb": "<TBD>"})
