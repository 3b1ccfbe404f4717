"""Per-pair runtime and accuracy of the classic baselines on built-in tasks (target at default scale, about 64^3
voxels, 2 cores: affine a few seconds, iterative about 20 s per pair; each better than identity in Dice).

Run on demand: ``python benchmarks/bench_baselines.py [--tasks abdomen_ct brain_mr] [--methods identity affine
iterative] [--pairs 2] [--threads 2] [--scale default]``. Runtime is the method's own time (``timed_register``,
no IO); Dice, folding fraction and displacement error come from ``regbench.metrics`` on the test pairs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from regbench.dataset import read_dataset
from regbench.metrics.eval_config import config_for_task
from regbench.metrics.evaluate import DISP_ERROR, FOLDING, evaluate_pair
from regbench.registry import get_method
from regbench.tasks.generate import make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["abdomen_ct", "abdomen_mrct", "brain_mr", "thorax_ct"])
    parser.add_argument("--methods", nargs="+", default=["identity", "affine", "iterative"])
    parser.add_argument("--pairs", type=int, default=2, help="test pairs per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", default="default", choices=["smoke", "default", "paper"])
    args = parser.parse_args()
    print(f"{'task':13s} {'method':10s} {'shape':12s} {'runtime_s':>9s} {'Dice':>6s} {'fold_%':>7s} {'err_mm':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            task = read_dataset(make_task(name, Path(tmp) / name, scale=args.scale))
            config = config_for_task(task, "test")
            pair_ids = task.pair_ids("test")[: args.pairs]
            pairs = {p: task.load_pair(p, with_labels=False) for p in pair_ids}
            shape = "x".join(map(str, task.shape))
            for method_name in args.methods:
                method = get_method(method_name, scale=args.scale, threads=args.threads)
                runtimes, scores = [], []
                for pair_id, pair in pairs.items():
                    disp, seconds = method.timed_register(pair)
                    runtimes.append(seconds)
                    scores.append(evaluate_pair(task, pair_id, disp, config))
                dice = np.mean([s.mean("DSC") for s in scores])
                folding = 100 * np.mean([s.mean(FOLDING) for s in scores])
                error = np.mean([s.mean(DISP_ERROR) for s in scores])
                print(f"{name:13s} {method_name:10s} {shape:12s} {np.mean(runtimes):9.2f} {dice:6.3f} "
                      f"{folding:7.3f} {error:7.2f}", flush=True)


if __name__ == "__main__":
    main()
