"""The ``regbench`` command line. Errors regbench raises on purpose print as one line, without a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from regbench.errors import RegbenchError

Command = Callable[[argparse.Namespace], int]


def _tasks(args: argparse.Namespace) -> int:
    from regbench.tasks.spec import list_tasks, load_spec

    for name in list_tasks():
        spec = load_spec(name)
        modalities = "/".join(spec.modalities.values())
        print(f"{name:14s} {spec.ndim}D  {spec.anatomy:8s} {modalities:10s} {spec.description}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list the built-in tasks").set_defaults(run=_tasks)

    make = sub.add_parser("make-task", help="generate a synthetic task as a Learn2Reg folder")
    make.add_argument("name", help="built-in task name or path to a task YAML")
    make.add_argument("outdir")
    make.add_argument("--seed", type=int, default=None, help="random seed (default: the task's own)")
    make.add_argument("--scale", default="default", choices=["smoke", "default", "paper"])
    make.set_defaults(run=_make_task)

    validate = sub.add_parser("validate", help="check a Learn2Reg dataset folder file by file")
    validate.add_argument("dir")
    validate.set_defaults(run=_validate)
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
