"""The ``regbench`` command line. Errors regbench raises on purpose print as one line, without a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from regbench.errors import DatasetError, RegbenchError

if TYPE_CHECKING:  # commands import what they need when run, so the command line starts fast
    from regbench.dataset import Split, Task

Command = Callable[[argparse.Namespace], int]


def _tasks(args: argparse.Namespace) -> int:
    from regbench.tasks.spec import list_tasks, load_spec

    for name in list_tasks():
        spec = load_spec(name)
        modalities = "/".join(spec.modalities.values())
        print(f"{name:14s} {spec.ndim}D  {spec.anatomy:8s} {modalities:10s} {spec.description}")
    return 0


def _methods(args: argparse.Namespace) -> int:
    from regbench.method_summary import method_summary
    from regbench.registry import list_methods

    print(f"{'method':14s} {'dims':6s} {'pairs':6s} {'trains':7s} {'uncertainty':12s} {'gpu':4s} threads  mem_mb")
    for name in list_methods():
        summary = method_summary(name)
        caps, res = summary.capabilities, summary.resources
        dims = "/".join(f"{d}D" for d in sorted(caps.dims))
        trains = ("labels" if caps.needs_labels else "yes") if summary.trainable else "no"
        print(f"{name:14s} {dims:6s} {'multi' if caps.multimodal else 'mono':6s} {trains:7s} "
              f"{'yes' if caps.uncertainty else 'no':12s} {'yes' if res.gpu else 'no':4s} {res.threads:7d} "
              f"{res.mem_mb:7d}")
    return 0


def _make_task(args: argparse.Namespace) -> int:
    from regbench.tasks.generate import make_task

    out = make_task(args.name, args.outdir, scale=args.scale, seed=args.seed)
    print(f"wrote {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from regbench.dataset import validate_dataset

    task = validate_dataset(args.dir)
    counts = ", ".join(f"{len(task.pair_ids(s))} {s} pairs" for s in ("val", "test"))
    print(f"{args.dir}: valid Learn2Reg dataset '{task.name}' ({task.ndim}D {task.shape}, {counts})")
    return 0


def _split(task: Task, disp_dir: Path, requested: Split | None) -> Split:
    """The split to score: the one asked for, else the one whose pairs ``disp_dir`` holds fields of. Asking for a
    split of which the folder holds no field, while it holds the other's, is an error saying so."""
    from regbench.metrics.evaluate import fields_held

    held = fields_held(task, disp_dir)
    if requested is None:
        present = [split for split in ("val", "test") if held[split]]
        if len(present) > 1:
            raise DatasetError(disp_dir, f"holds fields of {held['val']} val and {held['test']} test pairs; "
                                         "choose one with --split val or --split test")
        if not present:
            example = next((f"{p.disp_stem}.nii.gz" for s in ("val", "test") for p in task.pair_ids(s)), "")
            raise DatasetError(disp_dir, f"holds no field of a val or test pair of {task.name} "
                                         f"(fields are named like {example or 'disp_FFFF_MMMM_FFFF_MMMM.nii.gz'})")
        return present[0]
    other = "test" if requested == "val" else "val"
    if not held[requested] and held[other]:
        raise DatasetError(disp_dir, f"holds the fields of {held[other]} of the {len(task.pair_ids(other))} "
                                     f"{other} pairs and of no {requested} pair; run with --split {other}")
    return requested


def _evaluate(args: argparse.Namespace) -> int:
    """Score a folder; exit 1 if no pair had a usable field (metrics not scored are reported, not fatal)."""
    from regbench.dataset import read_dataset
    from regbench.metrics.eval_config import read_eval_config, write_eval_config
    from regbench.metrics.evaluate import evaluate_folder, write_evaluation

    task = read_dataset(args.dataset_dir)
    config = read_eval_config(args.config) if args.config else None
    split = args.split if config else _split(task, args.disp_dir, args.split)
    evaluation = evaluate_folder(task, args.disp_dir, split=split, config=config)
    write_evaluation(evaluation, args.out)
    write_eval_config(args.out / "evaluation_config.json", evaluation.config)
    for key, reason in evaluation.failures.items():
        print(f"regbench: failed {key}: {reason}", file=sys.stderr)
    for name in evaluation.unexpected_files:
        print(f"regbench: ignored {name}: not a pair of this evaluation", file=sys.stderr)
    for message in evaluation.not_scored_messages():
        print(f"regbench: {message}", file=sys.stderr)
    scored = len(evaluation.scores) - len(evaluation.failures)
    print(f"{task.name}: scored {scored} of {len(evaluation.scores)} pairs -> {args.out}")
    for metric, stats in evaluation.aggregates().items():
        print(f"  {metric:16s} {stats['mean']:10.4f} +- {stats['std']:.4f}  (30: {stats['30']:.4f})")
    if not scored:
        print(f"regbench: error: {args.disp_dir}: no pair could be scored (see the failures above)", file=sys.stderr)
    return 0 if scored else 1


def _version() -> str:
    """The installed version and the commit it runs from (the version number stays the same between
    commits); git runs only when asked, so other commands start without it."""
    from regbench.report.environment import package_version, regbench_commit

    return f"regbench {package_version('regbench')}, commit {regbench_commit()}"


class _VersionAction(argparse.Action):
    """``--version``: print ``_version()`` and exit, before a command is required."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and commit, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(_version())
        parser.exit()


DESCRIPTION = """\
regbench: a Learn2Reg-style benchmark of medical image registration methods. Every method runs on every
task and is scored with Learn2Reg's metrics and ranking (Dice, HD95, TRE, SDlogJ, runtime).

The benchmark itself runs through Snakemake, from a regbench checkout:

  snakemake --cores 2                        # every method on every task (config/config.yaml)
  snakemake --cores 2 --config scale=smoke   # the whole workflow on tiny data, in minutes

which writes the leaderboards to results/leaderboard/ and the report to results/report.html. This command
holds what runs on its own: listing tasks and methods, making a synthetic task, checking a Learn2Reg folder
and scoring a folder of displacement fields as the official evaluation does."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regbench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="regbench COMMAND --help describes a command; README.md the rest.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list the built-in tasks").set_defaults(run=_tasks)
    sub.add_parser("methods", help="list the registered methods and their capabilities").set_defaults(run=_methods)

    make = sub.add_parser("make-task", help="generate a synthetic task as a Learn2Reg folder")
    make.add_argument("name", help="built-in task name or path to a task YAML")
    make.add_argument("outdir")
    make.add_argument("--seed", type=int, default=None, help="random seed (default: the task's own)")
    make.add_argument("--scale", default="default", choices=["smoke", "default", "paper"])
    make.set_defaults(run=_make_task)

    validate = sub.add_parser("validate", help="check a Learn2Reg dataset folder file by file")
    validate.add_argument("dir")
    validate.set_defaults(run=_validate)

    evaluate = sub.add_parser("evaluate", help="score a folder of Learn2Reg displacement fields",
                              description="Score a folder of displacement fields as the official Learn2Reg "
                                          "evaluation does; writes OUT/metrics.csv and OUT/evaluation.json.")
    evaluate.add_argument("dataset_dir", type=Path, help="the Learn2Reg dataset folder")
    evaluate.add_argument("disp_dir", type=Path, help="folder of disp_*.nii.gz / disp_*.npz fields")
    evaluate.add_argument("--split", default=None, choices=["val", "test"],
                          help="which pairs to score (default: the split whose pairs DISP_DIR holds fields of; "
                               "an error if it holds fields of both or of neither; ignored with --config, "
                               "whose eval_pairs are scored)")
    evaluate.add_argument("--config", type=Path, default=None,
                          help="an official *_evaluation_config.json (default: derived from the dataset)")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except RegbenchError as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
