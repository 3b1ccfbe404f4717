"""What a paper-scale run costs (``--config scale=paper``): CPU hours and peak memory per method and task, the
number of SLURM jobs, and the wall time on N nodes, from the figures the methods declare (``regbench.job_costs``:
``Resources.paper`` measured by ``benchmarks/bench_real_sizes.py --preset paper``, else the default-scale
figures scaled by voxels). The same figures size the time and memory each job asks the scheduler for; this script
checks that the workflow's own plan, ``snakemake -n --config scale=paper --workflow-profile profiles/slurm``,
asks for exactly that and holds the job count it reports.

CPU hours of a (task, method): training, registering every test pair and, where the config's robustness track
runs it, the track's job; expected wall seconds times the method's threads. Wall time on N nodes of C cores, jobs packed perfectly: the larger of the total core hours
over N x C and the longest chain (one method's training, then its registration or track job, on one task). The data, evaluation,
leaderboard, plot and report jobs are counted as jobs, not in the hours (minutes each).

Run on demand: ``python benchmarks/paper_costs.py [--config config/config.yaml] [--nodes 1 4 16]
[--cores-per-node 32]``; prints the markdown table the README shows.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from regbench import job_costs
from regbench.dry_run import job_counts, planned_jobs
from regbench.registry import method_class
from regbench.tasks.spec import task_specs

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class JobCost:
    """The expected cost of one (task, method) at paper scale."""

    task: str
    method: str
    train_s: float  # wall seconds of training on `threads` threads (0: nothing to train)
    register_s: float  # wall seconds of the register job
    robustness_s: float  # wall seconds of the robustness track's job (0: not in the track)
    threads: int
    peak_mb: int
    measured: bool  # sized from Resources.paper (else from the default-scale figures)

    @property
    def cpu_hours(self) -> float:
        return (self.train_s + self.register_s + self.robustness_s) * self.threads / 3600


def expected_costs(config: dict) -> list[JobCost]:
    costs = []
    track = config.get("robustness") or {"methods": []}
    for task, spec in task_specs([str(t) for t in config["tasks"]]).items():
        size = job_costs.task_size(spec, "paper", config.get("split", "test"))
        for method in config["methods"]:
            cls = method_class(method)
            if spec.ndim not in cls.capabilities.dims:
                continue
            resources = cls.resources
            tracked = method in track["methods"] and task in (track.get("tasks") or [task])
            costs.append(JobCost(task, method, job_costs.train_seconds(resources, size) if cls.trainable else 0.0,
                                 job_costs.register_seconds(resources, size),
                                 job_costs.robustness_seconds(resources, size, track) if tracked else 0.0,
                                 resources.threads, job_costs.peak_mb(resources, size), resources.paper is not None))
    return costs


def paper_plan(config_file: Path) -> tuple[dict[str, int], dict[tuple[str, str, str], dict[str, str]]]:
    """The paper-scale SLURM dry run: jobs per rule, and (rule, task, method) -> resources of the train,
    register and robustness jobs."""
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "config").mkdir()
        shutil.copy(config_file, Path(workdir) / "config" / "config.yaml")
        snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
        result = subprocess.run([snakemake, "--snakefile", str(ROOT / "Snakefile"), "--directory", workdir, "-n",
                                 "--config", "scale=paper", "--workflow-profile", str(ROOT / "profiles" / "slurm")],
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the paper-scale dry run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    output = result.stdout + result.stderr
    kinds = {"train": "train", "register": "register", "register_refined": "register", "robustness": "robustness"}
    return job_counts(output), {(kinds[job.rule], job.wildcards["task"], job.wildcards["method"]): job.resources
                                for job in planned_jobs(output) if job.rule in kinds}


def disagreements(costs: list[JobCost], jobs: dict[tuple[str, str, str], dict[str, str]]) -> list[str]:
    """Where the plan's time or memory request differs from what the expected cost asks for."""
    found = []
    for cost in costs:
        for rule, seconds in (("train", cost.train_s), ("register", cost.register_s),
                               ("robustness", cost.robustness_s)):
            if rule != "register" and not seconds:
                continue
            planned = jobs.get((rule, cost.task, cost.method))
            expected = {"runtime": str(job_costs.time_limit_minutes(seconds)), "mem_mb": str(cost.peak_mb)}
            if planned is None or any(planned.get(key) != value for key, value in expected.items()):
                found.append(f"{rule} {cost.task} {cost.method}: plan {planned} against {expected}")
    return found


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.0f}" if hours >= 10 else f"{hours:.1f}" if hours >= 0.1 else "<0.1"


def report(costs: list[JobCost], counts: dict[str, int], nodes: list[int], cores: int) -> str:
    tasks = list(dict.fromkeys(cost.task for cost in costs))
    methods = list(dict.fromkeys(cost.method for cost in costs))
    by_key = {(cost.task, cost.method): cost for cost in costs}
    lines = ["| method | " + " | ".join(tasks) + " | total CPU h | peak GiB | from |",
             "|---|" + "---:|" * (len(tasks) + 2) + "---|"]
    for method in methods:
        row = [by_key.get((task, method)) for task in tasks]
        present = [cost for cost in row if cost]
        total = sum(cost.cpu_hours for cost in present)
        peak = max(cost.peak_mb for cost in present) / 1024
        cells = ["" if cost is None else _hours(cost.cpu_hours * 3600) for cost in row]
        source = "paper preset, measured" if present[0].measured else "default figures x voxels"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {_hours(total * 3600)} | {peak:.1f} | {source} |")
    total_core_s = sum(cost.cpu_hours for cost in costs) * 3600
    chain_s = max(cost.train_s + max(cost.register_s, cost.robustness_s) for cost in costs)
    jobs = sum(count for rule, count in counts.items() if rule != "all")
    lines += ["", f"{jobs} SLURM jobs ({', '.join(f'{rule} {n}' for rule, n in counts.items() if rule != 'all')}); "
              f"{_hours(total_core_s)} CPU hours in all; the longest chain {_hours(chain_s)} h.", "",
              f"| nodes of {cores} cores | wall time (h) |", "|---:|---:|"]
    for count in nodes:
        lines.append(f"| {count} | {_hours(max(total_core_s / (count * cores), chain_s))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--cores-per-node", type=int, default=32)
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    costs = expected_costs(config)
    counts, jobs = paper_plan(args.config)
    problems = disagreements(costs, jobs)
    print(report(costs, counts, args.nodes, args.cores_per_node))
    if problems:
        raise SystemExit("the plan disagrees with the expected costs:\n" + "\n".join(problems))
    print("\nThe paper-scale SLURM plan asks every train, register and robustness job for exactly these costs "
          "(time limit: 3x the expected wall time, at least 10 minutes).")


if __name__ == "__main__":
    main()
