"""Calibration of ``bayesian``'s uncertainty on built-in synthetic tasks, VI alone and VI + SGLD, with runtime.

Run on demand: ``python benchmarks/bench_bayesian_calibration.py [--tasks brain_mr abdomen_ct] [--pairs 2]
[--threads 2] [--scale default] [--sgld-iterations 150] [--config config/config.yaml]``, with the workflow
config's overrides for ``bayesian`` on each task. Each test pair is registered twice (``vi``: the
default settings; ``vi+sgld``: the same VI followed by 4 Langevin chains of ``--sgld-iterations`` steps, 50 of
burn-in, every 10th state kept) and scored by ``regbench.metrics.evaluate.evaluate_pair``: Dice, displacement
error, the share of true errors within 1/2/3 predicted sigma (Gaussian: 0.683/0.954/0.997), the calibration
error and the rank correlation of predicted std and actual error (``metrics.uncertainty``). Runtime is the
method's own wall time per pair and, beside it, the process CPU time (which a busy machine inflates less). An
``identity`` row per task gives the Dice and displacement error the posterior mean has to beat.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from regbench.dataset import read_dataset
from regbench.displacement import Displacement
from regbench.metrics.eval_config import config_for_task
from regbench.metrics.evaluate import CALIBRATION_ERROR, COVERAGE, DISP_ERROR, STD_ERROR_SPEARMAN, evaluate_pair
from regbench.registry import config_overrides, get_method
from regbench.tasks.generate import make_task

COLUMNS = ["DSC", DISP_ERROR, *(COVERAGE.format(k) for k in (1, 2, 3)), CALIBRATION_ERROR, STD_ERROR_SPEARMAN]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["brain_mr", "abdomen_ct"])
    parser.add_argument("--pairs", type=int, default=2, help="test pairs per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--sgld-iterations", type=int, default=150)
    parser.add_argument("--config", type=Path, default=Path(__file__).parents[1] / "config" / "config.yaml",
                        help="workflow config whose overrides for bayesian apply (as in the workflow)")
    args = parser.parse_args()
    config_file = yaml.safe_load(args.config.read_text())
    variants = {"vi": {}, "vi+sgld": {"sgld_iterations": args.sgld_iterations, "sgld_burn_in": 50,
                                      "sgld_thin": 10, "chains": 4}}
    print(f"{'task':11s} {'variant':8s} {'wall_s':>7s} {'cpu_s':>6s} " + " ".join(f"{c:>16s}" for c in COLUMNS))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            task = read_dataset(make_task(name, Path(tmp) / name, scale=args.scale))
            config = config_for_task(task, "test")
            pair_ids = task.pair_ids("test")[: args.pairs]
            pairs = {p: task.load_pair(p, with_labels=False) for p in pair_ids}
            identity = [evaluate_pair(task, p, Displacement.zeros(pair.fixed.image.shape), config)
                        for p, pair in pairs.items()]
            print(f"{name:11s} {'identity':8s} {'':7s} {'':6s} {np.mean([s.mean('DSC') for s in identity]):16.3f} "
                  f"{np.mean([s.mean(DISP_ERROR) for s in identity]):16.3f}", flush=True)
            for variant, overrides in variants.items():
                settings = {**config_overrides(config_file, name, "bayesian"), **overrides}
                method = get_method("bayesian", scale=args.scale, threads=args.threads, **settings)
                walls, cpus, scores = [], [], []
                for pair_id, pair in pairs.items():
                    start = time.process_time()
                    disp, seconds = method.timed_register(pair)
                    cpus.append(time.process_time() - start)
                    walls.append(seconds)
                    scores.append(evaluate_pair(task, pair_id, disp, config))
                values = [np.mean([s.mean(c) for s in scores]) for c in COLUMNS]
                print(f"{name:11s} {variant:8s} {np.mean(walls):7.1f} {np.mean(cpus):6.1f} "
                      + " ".join(f"{v:16.3f}" for v in values), flush=True)


if __name__ == "__main__":
    main()
