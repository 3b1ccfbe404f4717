"""Wall and CPU time of a whole run from a clean folder: the everyday smoke run,
``snakemake --cores 2 --config scale=smoke``, or the default benchmark, ``snakemake --cores 2``.

Runs the workflow of this checkout with the shipped config/config.yaml (every method, every task) in a fresh
working folder, then reads Snakemake's own job records: the wall time of the whole run, the CPU time of every
job (the run's children, from the kernel), the number of jobs per rule and, from the ``benchmark:`` files of
``train``, ``register`` and ``robustness``, the CPU seconds per method and its share of all jobs' CPU time.
Time it on a quiet machine: nothing else running.

Run on demand::

    python benchmarks/bench_workflow_run.py [--scale smoke|default] [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).parents[1]


def run(workdir: Path, cores: int, scale: str) -> tuple[float, float, str]:
    """Run the workflow at ``scale`` in ``workdir``: (wall seconds, CPU seconds of every job and Snakemake,
    log)."""
    (workdir / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "config.yaml", workdir / "config")
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                             "--cores", str(cores), "--config", f"scale={scale}"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"the {scale} run failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stderr + result.stdout


def per_method_cpu(results: Path, total_cpu: float) -> pd.DataFrame:
    """CPU seconds of the train and register (and robustness, where the track ran) jobs of every method, summed
    over tasks."""
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in (results / "benchmarks").glob("*/*/*.tsv"):
        kind, method = path.parts[-3], path.stem
        seconds[method][kind] += float(pd.read_csv(path, sep="\t")["cpu_time"].iloc[-1])
    table = pd.DataFrame(seconds).T.fillna(0.0)
    table["total"] = table.sum(axis=1)
    table["share %"] = 100 * table["total"] / total_cpu
    return table.sort_values("total", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["smoke", "default"], default="smoke")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix=f"regbench_{args.scale}_"))
    try:
        wall, cpu, log = run(workdir, args.cores, args.scale)
        jobs = Counter(line.split("rule ", 1)[1].rstrip(":") for line in log.splitlines()
                       if line.startswith(("rule ", "localrule ")) and line.endswith(":"))
        print(f"{args.scale} run on {args.cores} cores: {wall:.0f} s wall ({wall / 60:.1f} min), "
              f"{cpu:.0f} s CPU of all jobs, {sum(jobs.values())} jobs")
        print("jobs per rule: " + ", ".join(f"{rule} {n}" for rule, n in sorted(jobs.items())))
        print("CPU seconds per method (train, register and robustness jobs, every task) and share of all CPU:")
        print(per_method_cpu(workdir / "results", cpu).round(1).to_markdown())
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
