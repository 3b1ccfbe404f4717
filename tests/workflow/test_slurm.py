"""The workflow through a real SLURM (``profiles/slurm``, snakemake-executor-plugin-slurm): every job an sbatch
job asking for what its rule declares, a job the scheduler kills for memory reported with the scheduler's
reason while the rest of the run goes on, a re-run that redoes only what failed, and metrics equal to a local
run's.

Needs a SLURM whose node is idle, with accounting (sacct): ``.ci/slurm-up`` starts a one-node cluster on this
machine (root; CI runs it). Without one the tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from regbench.dry_run import job_counts, planned_jobs
from tests.workflow.test_workflow import ROOT, _snakemake, _workdir

CONFIG = "tasks: [cardiac_mr, thorax_ct]\nmethods: [identity, affine, vrnet]\nscale: smoke\n"
PROFILE = ("--workflow-profile", str(ROOT / "profiles" / "slurm"),
           "--slurm-init-seconds-before-status-checks", "2")  # smoke jobs take seconds, not the default 40
STARVED_MB = 150  # the training jobs' memory in the failing run: less than importing torch takes
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+?)/(?:(\S+)/)?\d+\.log\)")


def _slurm_unavailable() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        return "no SLURM here: start a one-node cluster with .ci/slurm-up (as root)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    if node.returncode != 0 or not node.stdout.strip().startswith(("idle", "mixed", "allocated")):
        return f"the SLURM node is not up ({(node.stdout + node.stderr).strip() or 'no node'}): run .ci/slurm-up"
    return None


UNAVAILABLE = _slurm_unavailable()
# Two runs through SLURM (20 sbatch jobs in all) and one local run: about 3 minutes on 2 cores.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")]


def _submitted(output: str) -> list[tuple[str, str, str]]:
    """(SLURM job id, rule, wildcard values joined by "_") of every job Snakemake submitted."""
    return [(job, rule, wildcards or "") for job, rule, wildcards in SUBMITTED.findall(output)]


def _planned(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """From a dry run: (rule, wildcard values joined by "_") -> threads, mem_mb and runtime the job declares."""
    return {(job.rule, "_".join(job.wildcards.values())): {"threads": str(job.threads), **job.resources}
            for job in planned_jobs(output) if "runtime" in job.resources}


def _accounting(jobs: list[str]) -> pd.DataFrame:
    """sacct's record of the jobs: state, requested memory, CPUs and time limit, comment; one row per job."""
    result = subprocess.run(["sacct", "-X", "--parsable2", "-j", ",".join(jobs),
                             "-o", "JobID,State,ReqMem,ReqCPUS,Timelimit,Comment"],
                            capture_output=True, text=True, check=True)
    return pd.read_csv(StringIO(result.stdout), sep="|", dtype=str).set_index("JobID")


def _minutes(limit: str) -> int:
    """A SLURM time limit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, _ = (int(part) for part in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """The subset through SLURM: first with the training jobs starved of memory (they fail; the rest goes on),
    then resumed to the end; and the same subset run locally. Returns the outputs and workdirs."""
    workdir = _workdir(tmp_path_factory.mktemp("slurm"), CONFIG)
    plan = _snakemake(workdir, "-n", *PROFILE)
    starved = _snakemake(workdir, *PROFILE, "--set-resources", f"train:mem_mb={STARVED_MB}")
    resume_plan = _snakemake(workdir, "-n", *PROFILE)
    resumed = _snakemake(workdir, *PROFILE)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    local = _workdir(tmp_path_factory.mktemp("local"), CONFIG)
    local_run = _snakemake(local)
    assert local_run.returncode == 0, local_run.stdout[-3000:] + local_run.stderr[-3000:]
    return {"workdir": workdir, "local": local, "plan": plan.stdout + plan.stderr, "starved": starved,
            "resume_plan": resume_plan.stdout + resume_plan.stderr, "resumed": resumed.stdout + resumed.stderr}


def test_a_job_killed_for_memory_fails_with_the_schedulers_reason_and_the_rest_goes_on(cluster_run):
    starved = cluster_run["starved"]
    output = starved.stdout + starved.stderr
    assert starved.returncode != 0
    failures = re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: '(\w+)'", output)
    trained = {job for job, rule, _ in _submitted(output) if rule == "train"}
    assert {job for job, _ in failures} == trained and len(trained) == 2
    states = {state for _, state in failures}
    if states != {"OUT_OF_MEMORY"}:  # without cgroups (.ci/slurm-up) the sampler kills: FAILED, reason in the log
        assert states == {"FAILED"}
        assert all("exceeded memory limit" in log.read_text()
                   for log in (cluster_run["workdir"] / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    for task in ("cardiac_mr", "thorax_ct"):  # --keep-going: the jobs that do not need the models finished
        for method in ("identity", "affine"):
            assert any((cluster_run["workdir"] / "results" / "registrations" / task / method).glob("disp_*"))


def test_a_rerun_redoes_only_the_failed_jobs_and_what_needs_them(cluster_run):
    plan = job_counts(cluster_run["resume_plan"])
    assert plan["train"] == 2 and plan["register"] == 2  # vrnet on both tasks; identity and affine are done
    assert "dataset" not in plan


def test_every_job_went_through_slurm_asking_for_what_its_rule_declares(cluster_run):
    planned = _planned(cluster_run["plan"])
    runs = {"starved": cluster_run["starved"].stdout + cluster_run["starved"].stderr,
            "resumed": cluster_run["resumed"]}
    submitted = {name: _submitted(output) for name, output in runs.items()}
    # each job of the plan ran through sbatch once, the trainings twice (starved, then resumed); none locally
    expected = Counter(key for key in planned if key[0] != "all") + Counter(key for key in planned if key[0] == "train")
    assert Counter((rule, wildcards) for jobs in submitted.values() for _, rule, wildcards in jobs) == expected
    for name, jobs in submitted.items():
        accounting = _accounting([job for job, _, _ in jobs])
        for job, rule, wildcards in jobs:
            record, declared = accounting.loc[job], planned[rule, wildcards]
            starved = name == "starved" and rule == "train"
            assert record["ReqMem"] == f"{STARVED_MB if starved else declared['mem_mb']}M", (job, rule, wildcards)
            assert record["ReqCPUS"] == declared["threads"], (job, rule, wildcards)
            assert _minutes(record["Timelimit"]) == int(declared["runtime"]), (job, rule, wildcards)
            assert record["Comment"].startswith(f"rule_{rule}"), (job, record["Comment"])
            assert record["State"] in ({"OUT_OF_MEMORY", "FAILED"} if starved else {"COMPLETED"}), (job, record)


def _metrics_without_runtimes(path: Path) -> str:
    return "".join(line for line in path.read_text().splitlines(keepends=True) if ",Runtime" not in line)


def test_the_cluster_run_scores_exactly_as_a_local_run(cluster_run):
    cluster, local = cluster_run["workdir"] / "results", cluster_run["local"] / "results"
    tables = sorted(path.relative_to(local) for path in (local / "metrics").rglob("metrics.csv"))
    assert len(tables) == 6
    for table in tables:
        assert _metrics_without_runtimes(cluster / table) == _metrics_without_runtimes(local / table), table
    fields = sorted(path.relative_to(local) for path in (local / "registrations").rglob("disp_*"))
    assert fields and all((cluster / field).read_bytes() == (local / field).read_bytes() for field in fields)
