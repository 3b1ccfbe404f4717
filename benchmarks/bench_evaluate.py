"""Time and memory of scoring one OASIS-sized pair (160x224x192, 35 labels): regbench vs the official code.

Builds a synthetic pair (an ellipsoidal "brain" split into 35 smooth regions; the moving labels are the fixed
ones under a smooth random deformation; the submitted field is another smooth random field), writes it as a
Learn2Reg folder with an evaluation config, and scores it in a fresh process: with regbench, and, if the
official evaluation folder is given (``MDL-UzL/L2R/evaluation``, which needs numpy < 2: pass the interpreter
of an environment built from its requirements.txt), with the official ``evaluation.py`` too. Reports seconds
and peak memory above the process's state after imports, per pair, the ratio, and whether the numbers agree.

Run on demand::

    python benchmarks/bench_evaluate.py [--official /path/to/L2R/evaluation --official-python /venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

SHAPE = (160, 224, 192)
N_LABELS = 35
COARSE = 8  # random fields are drawn on a grid this many times coarser, then interpolated (cheap, smooth)

# Each driver runs in a fresh process: peak memory is the peak RSS minus the RSS after imports.
_MEASURE = """
import json, resource, sys, time
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
def report(rss_before, start, cpu):
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before}))
"""
_OURS = _MEASURE + """
from regbench.dataset import read_dataset
from regbench.metrics.eval_config import read_eval_config
from regbench.metrics.evaluate import evaluate_folder, write_evaluation
task, config = read_dataset(sys.argv[1]), read_eval_config(sys.argv[3])
before = rss_mb(); start = time.perf_counter(); cpu = time.process_time()
write_evaluation(evaluate_folder(task, sys.argv[2], config=config), sys.argv[4])
report(before, start, cpu)
"""
_OFFICIAL = _MEASURE + """
sys.path[:0] = [sys.argv[5], sys.argv[5] + "/surface-distance"]
import evaluation
before = rss_mb(); start = time.perf_counter(); cpu = time.process_time()
evaluation.evaluate_L2R(sys.argv[2], sys.argv[1], sys.argv[4] + "/evaluation.json", sys.argv[3])
report(before, start, cpu)
"""


def smooth(rng: np.random.Generator, *, channels: int = 1) -> np.ndarray:
    """Smooth random values on the full grid, (channels, *SHAPE), unit standard deviation on the coarse grid."""
    coarse = tuple(n // COARSE for n in SHAPE)
    out = np.empty((channels, *SHAPE), dtype=np.float32)
    for c in range(channels):
        field = ndimage.gaussian_filter(rng.standard_normal(coarse), 1.0)
        out[c] = ndimage.zoom(field / field.std(), [n / m for n, m in zip(SHAPE, coarse)], order=1)
    return out


def brain_labels(rng: np.random.Generator) -> np.ndarray:
    """35 labels shaped roughly like OASIS's: a folded cortical ribbon split into 2 x 4 lobes, two
    white-matter halves, and 25 compact deep structures (perturbed Voronoi cells near the centre); 0 outside.
    """
    axes = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in SHAPE], indexing="ij", sparse=True)
    folds = 0.04 * smooth(rng)[0]
    radius = np.sqrt(sum(a**2 for a in axes)) / 0.85 + folds  # 1 at the (folded) brain surface
    labels = np.zeros(SHAPE, dtype=np.int16)
    left = axes[0] < 0
    lobe = (axes[1] > 0).astype(np.int16) * 2 + (axes[2] > 0)  # four sectors per hemisphere
    cortex = (radius <= 1) & (radius > 0.88)
    labels[cortex] = (1 + lobe + 4 * left)[cortex]
    white = radius <= 0.88
    labels[white] = np.broadcast_to(np.where(left, 9, 10), SHAPE)[white]
    seeds = rng.uniform(-0.45, 0.45, size=(N_LABELS - 10, 3)).astype(np.float32)
    nearest = np.full(SHAPE, np.inf, dtype=np.float32)
    owner = np.zeros(SHAPE, dtype=np.int16)
    for k, seed in enumerate(seeds):
        distance = np.sqrt(sum((a - c) ** 2 for a, c in zip(axes, seed))) + 0.03 * smooth(rng)[0]
        closer = distance < nearest
        nearest[closer], owner[closer] = distance[closer], 11 + k
    deep = (nearest < 0.12) & (radius <= 0.8)
    labels[deep] = owner[deep]
    return labels


def write_case_study(root: Path, rng: np.random.Generator) -> tuple[Path, Path, Path]:
    """The dataset folder, the submission folder and the evaluation config of one OASIS-sized pair."""
    from regbench import io
    from regbench.dataset import describe, image_relpath, read_dataset, write_dataset
    from regbench.displacement import Displacement
    from regbench.image import Image, LabelMap
    from regbench.metrics.eval_config import config_for_task, write_eval_config
    from regbench.metrics.warp import warp_labels_nearest
    from regbench.pair import Case, CaseId, PairId

    fixed_labels = brain_labels(rng)
    anatomy = np.moveaxis(3.0 * smooth(rng, channels=3), 0, -1)
    moving_labels = warp_labels_nearest(fixed_labels, anatomy)
    fixed, moving = CaseId(1, 0), CaseId(2, 0)
    image = Image(np.zeros(SHAPE, dtype=np.float32))
    cases = {image_relpath("OASIS", fixed): Case(fixed, image, LabelMap(fixed_labels)),
             image_relpath("OASIS", moving): Case(moving, image, LabelMap(moving_labels))}
    description = describe(
        "OASIS", ndim=3, shape=SHAPE, modality={0: "MR"}, labels={k: f"region {k}" for k in range(1, N_LABELS + 1)},
        training=[{"image": p} for p in cases], test=[], pairings="unpaired", registration_test=[],
        registration_val=[{"fixed": image_relpath("OASIS", fixed), "moving": image_relpath("OASIS", moving)}])
    dataset = root / "OASIS"
    write_dataset(dataset, description, cases)
    submission = root / "submission"
    field = -0.8 * anatomy + np.moveaxis(0.5 * smooth(rng, channels=3), 0, -1)  # a fair registration
    io.write_disp(submission / f"{PairId(fixed, moving).disp_stem}.nii.gz", Displacement(field))
    config = root / "OASIS_VAL_evaluation_config.json"
    write_eval_config(config, config_for_task(read_dataset(dataset), "val"))
    return dataset, submission, config


def run(python: str, driver: str, *args: Path | str, repeat: int) -> dict[str, float]:
    """Best time and memory over ``repeat`` fresh processes (the minimum filters out other load)."""
    results = []
    for _ in range(repeat):
        done = subprocess.run([python, "-c", driver, *map(str, args)], check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: min(r[key] for r in results) for key in results[0]}


def show(name: str, result: dict[str, float]) -> None:
    print(f"{name}: {result['seconds']:6.2f} s per pair ({result['cpu_seconds']:.2f} s CPU), "
          f"peak {result['peak_mb']:6.0f} MB above imports")


def case_means(path: Path, metrics: list[str]) -> dict[str, float]:
    case = next(iter(json.loads(path.read_text())["cases"].values()))
    return {m: float(case[m]["mean"]) for m in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, default=None, help="the official L2R evaluation/ folder")
    parser.add_argument("--official-python", default=sys.executable, help="interpreter for the official code")
    parser.add_argument("--work", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation; the best is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        dataset, submission, config = write_case_study(root, np.random.default_rng(args.seed))
        metrics = ["DSC", "HD95", "LogJacDetStd"]
        ours = run(sys.executable, _OURS, dataset, submission, config, root / "ours", repeat=args.repeat)
        show("regbench", ours)
        if args.official is None:
            return
        (root / "official").mkdir(exist_ok=True)
        official = run(args.official_python, _OFFICIAL, dataset, submission, config, root / "official",
                       args.official.resolve(), repeat=args.repeat)
        show("official", official)
        print(f"ratio:    {official['seconds'] / ours['seconds']:6.1f}x faster (wall), "
              f"{official['cpu_seconds'] / ours['cpu_seconds']:.1f}x (CPU), "
              f"{official['peak_mb'] / max(ours['peak_mb'], 1):.1f}x less memory")
        a = case_means(root / "ours" / "evaluation.json", metrics)
        b = case_means(root / "official" / "evaluation.json", metrics)
        for metric in metrics:
            print(f"  {metric:14s} regbench {a[metric]:.10g}  official {b[metric]:.10g}  "
                  f"relative difference {abs(a[metric] - b[metric]) / max(abs(b[metric]), 1e-300):.2g}")


if __name__ == "__main__":
    main()
