"""Every method at real Learn2Reg sizes on 2 CPU cores: time, CPU time, peak memory, or its declared refusal.

Two synthetic pairs, generated once (deterministic, cached under ``OUT/data/``) by the project's own task
generators at a custom scale:

- ``oasis``: ``brain_mr`` at OASIS's 160x224x192 grid (1 mm: field of view 160x224x192 mm), its 13 regions
  each cut into 2-3 equal-volume slabs along the region's principal axis on the 1 mm template, so the
  subjects carry 35 labels like OASIS (the cut is made once on the template, hence consistent across
  subjects);
- ``abdomenctct``: ``abdomen_ct`` at AbdomenCTCT's 192x160x256 grid (1.33 x 1.4 x 1.125 mm) with all ten
  structures the phantom draws labelled (AbdomenCTCT has 13).

Each task has 2 training subjects (2 ordered training pairs), 1 validation pair and 1 test pair, the one that
is registered. Every method (``--methods``, default all registered) runs in a fresh subprocess per phase, one
at a time, so its peak memory is its own:

- ``train`` (learning methods only): the default-scale method with the iteration counts of its ``smoke``
  preset (``TRAIN_SMOKE_FIELDS``), trained on the 2 training pairs by ``regbench.runner.training_pairs`` and
  saved; this exercises the trained-state path at full size without hours of training;
- ``register``: the default-scale method (with the trained state) registers the test pair, images blinded as
  the workflow's ``register`` rule blinds them.

Recorded per phase: wall time (of ``timed_register`` / ``train``), CPU time (user + sys of the subprocess over
that call, all threads), peak RSS (``VmHWM`` of the subprocess, which includes reading the pair) and,
for registration, the method's own runtime and the mean Dice over labels against identity's; or the
one-line refusal when a method declares a limit the pair exceeds (``Capabilities.max_voxels``). A subprocess
that runs past ``--timeout-min`` is killed and recorded as "timed out"; one whose resident memory passes
``--mem-limit-gib`` (capped below the machine's memory) or that leaves the machine almost without free
memory is killed and recorded as such.

``--preset paper`` measures the paper presets instead, which ``Resources.paper`` declares and the workflow
sizes paper-scale jobs from (``regbench.job_costs``): training runs 1 and then ``PAPER_STEPS`` steps, giving the
CPU cost of a step and the fixed cost beside it; ``oasis_eighth`` (OASIS's field of view at 2 mm, an eighth of
its voxels) serves a preset that does not fit the machine's memory at full size.

Run on demand (not part of the test suite), one method at a time:
``python benchmarks/bench_real_sizes.py [--sizes oasis abdomenctct] [--methods identity affine ...]
[--threads 2] [--timeout-min 15] [--mem-limit-gib 24] [--preset default|paper] [--out results/real_sizes]``.
Writes ``OUT/real_sizes.md`` (the table) and ``OUT/real_sizes.json`` (every measurement), updated after each
method, and prints the table at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

GIB = 1024**3
TRAIN_SMOKE_FIELDS = {  # per learning method: the training-length settings taken from its smoke preset
    "voxelmorph": ("iterations",),
    "gradirn": ("iterations",),
    "vrnet": ("iterations",),
    "csain": ("iterations", "freeze"),
    "mad": ("steps",),
}
FALLBACK_SMOKE_FIELDS = ("iterations", "steps")  # for a learning method not listed above
# ``--preset paper``: the paper preset trains for days, so training runs ``k`` steps (per level, for csain),
# once with k = 1 and once with k = PAPER_STEPS; the difference over the extra steps is the cost of one step
# (for csain: one step of each level, summed) and what k = 1 costs beyond its step the fixed cost (preparing
# the pairs, csain's tuning). The workflow's paper-scale time limits are sized from these (regbench.job_costs).
PAPER_STEPS = 3
PAPER_TRAIN_STEPS = {
    "voxelmorph": lambda k: {"iterations": k},
    "gradirn": lambda k: {"iterations": k},
    "vrnet": lambda k: {"iterations": k},
    "csain": lambda k: {"iterations": (k, k, k), "freeze": 0, "tuning_rounds": 0},  # its tuning: not measured
    "mad": lambda k: {"steps": k},
}
BRAIN_SPLITS = {1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 3, 9: 2, 10: 2, 11: 2, 12: 3, 13: 2}  # 35 labels


@dataclasses.dataclass(frozen=True)
class Size:
    """One real size: the built-in task whose generator draws it, its grid and how it is adapted."""

    name: str
    task: str
    shape: tuple[int, int, int]
    what: str
    field_of_view_mm: tuple[int, int, int] | None = None  # brain_mr: None is 1 mm voxels


SIZES = {
    "oasis": Size("oasis", "brain_mr", (160, 224, 192), "OASIS: 160x224x192, 1 mm, 35 labels"),
    "abdomenctct": Size("abdomenctct", "abdomen_ct", (192, 160, 256),
                        "AbdomenCTCT: 192x160x256, 1.33x1.4x1.125 mm, 10 labels"),
    # an eighth of OASIS's voxels, for a paper preset that does not fit the machine's memory at full size
    "oasis_eighth": Size("oasis_eighth", "brain_mr", (80, 112, 96), "OASIS at 2 mm: 80x112x96, 35 labels",
                         field_of_view_mm=(160, 224, 192)),
}


# Data -----------------------------------------------------------------------------------------------------


def _subdivided_brain_template():
    """The brain template with each of its 13 regions cut into ``BRAIN_SPLITS`` equal-volume slabs along the
    region's principal axis (35 labels), and the label names."""
    from regbench.tasks import brain

    template = brain.load_template()
    labels = np.zeros_like(template.labels)
    names: dict[int, str] = {}
    for region, name in brain.LABELS.items():
        points = np.argwhere(template.labels == region).astype(np.float64)
        centred = points - points.mean(0)
        axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
        position = centred @ axis
        parts = BRAIN_SPLITS[region]
        part = np.searchsorted(np.quantile(position, np.arange(1, parts) / parts), position, side="right")
        first = len(names) + 1
        labels[tuple(points.astype(int).T)] = first + part
        names.update({first + i: f"{name} {i + 1}/{parts}" for i in range(parts)})
    labels.flags.writeable = False
    return dataclasses.replace(template, labels=labels), names


@contextlib.contextmanager
def _brain_with_35_labels() -> Iterator[dict[int, str]]:
    """``tasks/brain.py`` drawing subjects from the 35-label template for the duration (restored after)."""
    from regbench.tasks import brain

    template, names = _subdivided_brain_template()
    saved = brain.LABELS, brain.load_template
    brain.LABELS, brain.load_template = names, lambda: template
    try:
        yield names
    finally:
        brain.LABELS, brain.load_template = saved


def make_dataset(size: Size, root: Path) -> Path:
    """Generate the Learn2Reg folder of ``size`` under ``root / size.name`` unless it is there already."""
    from regbench.tasks.generate import generate, write_staged
    from regbench.tasks.spec import Scale, load_spec

    outdir = root / size.name
    if any(outdir.glob("*_dataset.json")):
        return outdir
    spec = load_spec(size.task)
    spec = dataclasses.replace(spec, name=size.name, scales={"real": Scale(size.shape, 2, 1, 1)})
    context: contextlib.AbstractContextManager = contextlib.nullcontext()
    if size.task == "brain_mr":
        context = _brain_with_35_labels()
        settings = dict(spec.settings, field_of_view_mm=list(size.field_of_view_mm or size.shape))  # as OASIS
        spec = dataclasses.replace(spec, settings=settings)
    elif size.task == "abdomen_ct":
        from regbench.tasks.abdomen import STRUCTURES

        spec = dataclasses.replace(spec, labels={i + 1: name for i, name in enumerate(STRUCTURES)})
    start = time.perf_counter()
    with context as labels:
        if labels is not None:
            spec = dataclasses.replace(spec, labels=labels)
        write_staged(spec, generate(spec, scale="real"), outdir)
    print(f"generated {size.what} in {time.perf_counter() - start:.0f} s -> {outdir}", flush=True)
    return outdir


def mean_dice(fixed: np.ndarray, moving: np.ndarray, disp: np.ndarray | None) -> float:
    """Mean Dice over the fixed labels, moving labels warped nearest neighbour (the official way)."""
    from regbench.metrics.dice import case_mean, dice_per_label
    from regbench.metrics.warp import warp_labels_nearest

    warped = moving if disp is None else warp_labels_nearest(moving, disp)
    labels = [int(k) for k in np.unique(fixed) if k != 0]
    return float(case_mean(dice_per_label(fixed, moving, warped, labels)))


# Child: one phase of one method in a fresh process -----------------------------------------------------------


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (``ants`` runs its tool in one)."""
    return sum(usage.ru_utime + usage.ru_stime
               for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def _peak_gib() -> float:
    """Peak resident memory of this process: VmHWM, not ``ru_maxrss``, which Linux carries over an exec from
    the parent (a parent that just generated the data would show in every child's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _training_overrides(cls, preset: str, steps: int) -> dict:
    if preset == "paper":
        return PAPER_TRAIN_STEPS[cls.name](steps)
    smoke, default = cls.Params.smoke(), cls.Params()
    fields = TRAIN_SMOKE_FIELDS.get(cls.name, FALLBACK_SMOKE_FIELDS)
    overrides = {}
    for field in fields:
        if hasattr(smoke, field):
            value, current = getattr(smoke, field), getattr(default, field)
            if not isinstance(current, tuple) or len(current) == len(value):
                overrides[field] = value
    return overrides


def child(args: argparse.Namespace) -> None:
    from regbench.dataset import read_dataset
    from regbench.errors import RegbenchError
    from regbench.pair import Pair
    from regbench.registry import get_method, method_class
    from regbench.runner import training_pairs

    task = read_dataset(args.dataset)
    cls = method_class(args.method)
    result: dict = {"phase": args.child}
    start_cpu, start = _cpu_seconds(), time.perf_counter()
    try:
        if args.child == "train":
            overrides = _training_overrides(cls, args.preset, args.steps)
            result["overrides"] = overrides
            method = get_method(args.method, scale=args.preset, threads=args.threads, **overrides)
            pairs = training_pairs(task)
            result["pairs"] = len(pairs)
            start_cpu, start = _cpu_seconds(), time.perf_counter()
            method.train(task, pairs, args.model.parent / f"{args.method}_work")
            result.update(wall_s=time.perf_counter() - start, cpu_s=_cpu_seconds() - start_cpu, peak_gib=_peak_gib())
            method.save(args.model)
        else:
            method = get_method(args.method, scale=args.preset, threads=args.threads)
            if cls.trainable and args.model.is_file():  # none if training failed or refused: then untrained
                method.load(args.model)
            pair_id = task.pair_ids("test")[0]
            loaded = task.load_pair(pair_id, with_labels=False)
            pair = Pair(pair_id, *(dataclasses.replace(case, labels=None, keypoints=None)  # as the workflow does
                                   for case in (loaded.fixed, loaded.moving)))
            start_cpu, start = _cpu_seconds(), time.perf_counter()
            disp, seconds = method.timed_register(pair)
            result.update(wall_s=time.perf_counter() - start, cpu_s=_cpu_seconds() - start_cpu,
                          peak_gib=_peak_gib(), runtime_s=seconds)
            del pair, loaded
            labelled = task.load_pair(pair_id, with_labels=True)
            result["dice"] = mean_dice(labelled.fixed.labels.data, labelled.moving.labels.data, disp.data)
        result["status"] = "ok"
    except RegbenchError as err:
        message = str(err).replace("\n", " ")
        result.update(status="refused" if " refuses pair " in message else "failed", message=message,
                      wall_s=time.perf_counter() - start, cpu_s=_cpu_seconds() - start_cpu, peak_gib=_peak_gib())
    args.result.write_text(json.dumps(result))


# Parent: every method, one subprocess at a time ------------------------------------------------------------


def _meminfo_gib(key: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / GIB
    raise KeyError(key)


def _poll_tree(pid: int, cpu_seen: dict[int, float]) -> float:
    """Resident GiB of the process ``pid`` and its descendants; records each one's CPU seconds in ``cpu_seen``."""
    import psutil

    total = 0
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in tree:
        try:
            with process.oneshot():
                total += process.memory_info().rss
                times = process.cpu_times()
                cpu_seen[process.pid] = times.user + times.system
        except psutil.Error:
            pass
    return total / GIB


def run_phase(phase: str, method: str, dataset: Path, workdir: Path, args: argparse.Namespace,
              mem_limit_gib: float, steps: int = 1) -> dict:
    """One phase of one method in a fresh subprocess, watched for time and memory (``steps``: training steps
    of the paper preset)."""
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / f"{method}_{phase}.json"
    result_path.unlink(missing_ok=True)
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=threads, OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, __file__, "--child", phase, "--method", method, "--dataset", str(dataset),
               "--model", str(workdir / f"{method}.pt"), "--result", str(result_path), "--threads", threads,
               "--preset", args.preset, "--steps", str(steps)]
    log = (workdir / f"{method}_{phase}.log").open("w")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # A session of its own, so that a kill takes the method's helper processes (ants' tool) with it.
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    seen_gib, killed, cpu_seen = 0.0, None, {}
    while process.poll() is None:
        seen_gib = max(seen_gib, _poll_tree(process.pid, cpu_seen))
        elapsed = time.perf_counter() - start
        if elapsed > args.timeout_min * 60:
            killed = f"timed out after {args.timeout_min:g} min"
        elif seen_gib > mem_limit_gib:
            killed = f"killed: resident memory passed {mem_limit_gib:.1f} GiB"
        elif _meminfo_gib("MemAvailable") < 1.0:
            killed = f"killed: the machine ran out of memory at {seen_gib:.1f} GiB resident"
        if killed:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
        time.sleep(0.5)
    log.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process_wall = time.perf_counter() - start
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if killed:  # a killed child never reaped its helpers: their CPU time is known from polling only
        process_cpu = sum(cpu_seen.values())
    if killed or not result_path.is_file():
        tail = (workdir / f"{method}_{phase}.log").read_text().strip().splitlines()[-1:] or [""]
        status = "timed out" if killed and killed.startswith("timed out") else "failed"
        message = killed or f"exit code {process.returncode}: {tail[0][:300]}"
        result = {"phase": phase, "status": status, "message": message, "peak_gib": seen_gib}
    else:
        result = json.loads(result_path.read_text())
        # The child's VmHWM misses a grandchild (ants' tool process); the polled peak of the tree includes it.
        result["peak_gib"] = max(result.get("peak_gib", 0.0), seen_gib)
    result.update(process_wall_s=process_wall, process_cpu_s=process_cpu, watched_peak_gib=seen_gib,
                  limit_min=args.timeout_min)
    return result


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict], identity_dice: dict[str, float]) -> str:
    lines = ["| method | size | register wall s | CPU s | peak GiB | runtime s | train wall s | train CPU s | "
             "train peak GiB | Dice (identity) | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    def times(phase: dict) -> tuple[str, str]:
        """Wall and CPU seconds of a phase; for a killed one, the subprocess's (at least that long)."""
        if phase.get("wall_s") is not None or "process_wall_s" not in phase:
            return _fmt(phase.get("wall_s")), _fmt(phase.get("cpu_s"))
        return f"> {phase['process_wall_s']:.0f}", f"> {phase['process_cpu_s']:.0f}"

    for row in rows:
        reg, train = row["register"], row.get("train") or {}
        (wall, cpu), (train_wall, train_cpu) = times(reg), times(train)
        dice = reg.get("dice")
        dice_text = "" if dice is None else f"{dice:.3f} ({identity_dice[row['size']]:.3f})"
        status = reg["status"]
        if train and train["status"] != "ok":
            status = f"train {train['status']}; register {status}"
        messages = list(dict.fromkeys(m for m in (train.get("message"), reg.get("message")) if m))
        if status == "timed out" and messages and messages[-1].startswith(status):
            status = messages.pop()  # "timed out after N min", once
        if messages:
            status += ": " + " / ".join(messages).replace("|", "/")
        lines.append(f"| {row['method']} | {row['size']} | {wall} | {cpu} | {_fmt(reg.get('peak_gib'), 2)} | "
                     f"{_fmt(reg.get('runtime_s'))} | {train_wall} | {train_cpu} | {_fmt(train.get('peak_gib'), 2)} | "
                     f"{dice_text} | {status} |")
    return "\n".join(lines)


def parent(args: argparse.Namespace) -> None:
    from regbench.dataset import read_dataset
    from regbench.registry import list_methods, method_class

    methods = args.methods or list_methods()
    out = args.out
    mem_limit = min(args.mem_limit_gib, _meminfo_gib("MemTotal") - 2.0)
    if mem_limit < args.mem_limit_gib:
        print(f"note: this machine has {_meminfo_gib('MemTotal'):.1f} GiB; memory is capped at {mem_limit:.1f} GiB "
              f"instead of {args.mem_limit_gib:g}", flush=True)
    results_path = out / "real_sizes.json"
    saved = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": [], "identity_dice": {}}
    rows = [r for r in saved["rows"] if not (r["size"] in args.sizes and r["method"] in methods)]
    identity_dice = saved["identity_dice"]
    for size_name in args.sizes:
        size = SIZES[size_name]
        dataset = make_dataset(size, out / "data")
        task = read_dataset(dataset)
        pair = task.load_pair(task.pair_ids("test")[0], with_labels=True)
        identity_dice[size_name] = mean_dice(pair.fixed.labels.data, pair.moving.labels.data, None)
        print(f"{size.what}: test pair {pair.id.key}, {np.prod(size.shape) / 1e6:.1f} M voxels, "
              f"{len(task.labels)} labels, identity Dice {identity_dice[size_name]:.3f}", flush=True)
        del pair
        for method in methods:
            workdir = out / "runs" / size_name
            row: dict = {"method": method, "size": size_name}
            if method_class(method).trainable and args.preset == "paper":
                one = run_phase("train", method, dataset, workdir, args, mem_limit, steps=1)
                row["train"] = run_phase("train", method, dataset, workdir, args, mem_limit, steps=PAPER_STEPS)
                row["train"]["step_cpu_s"] = step = _per_step(one, row["train"])
                row["train"]["fixed_cpu_s"] = None if step is None else one["cpu_s"] - step
                print(f"  {method:11s} train    {json.dumps(row['train'])}", flush=True)
            elif method_class(method).trainable:
                row["train"] = run_phase("train", method, dataset, workdir, args, mem_limit)
                print(f"  {method:11s} train    {json.dumps(row['train'])}", flush=True)
            row["register"] = run_phase("register", method, dataset, workdir, args, mem_limit)
            print(f"  {method:11s} register {json.dumps(row['register'])}", flush=True)
            rows.append(row)
            order = {name: i for i, name in enumerate(SIZES)}
            rows.sort(key=lambda r: (order.get(r["size"], 99), r["method"]))
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps({"rows": rows, "identity_dice": identity_dice}, indent=1))
            (out / "real_sizes.md").write_text(_report(rows, identity_dice, args))
    print(_report(rows, identity_dice, args))


def _per_step(one: dict, more: dict) -> float | None:
    """CPU seconds of one training step: the extra steps' extra cost (None if either run failed)."""
    if one.get("status") != "ok" or more.get("status") != "ok":
        return None
    return (more["cpu_s"] - one["cpu_s"]) / (PAPER_STEPS - 1)


def _report(rows: list[dict], identity_dice: dict[str, float], args: argparse.Namespace) -> str:
    sizes = "; ".join(f"{s.name} = {s.what}" for s in SIZES.values())
    return (f"# Methods at real Learn2Reg sizes\n\n{sizes}. One test pair each, {args.threads} torch threads, one "
            "method at a time in a fresh subprocess per phase (`benchmarks/bench_real_sizes.py`).\n\n"
            "Wall and CPU seconds (user + sys, all threads and helper processes) are of `timed_register` "
            "(`train`) in that subprocess; '> N' marks a subprocess killed at its time limit (then its whole "
            "wall and CPU time). On a machine shared with other jobs CPU time is the steadier figure. Peak GiB "
            "is the subprocess's peak RSS (VmHWM, or the polled peak of its process tree if larger), reading "
            "the pair included; runtime is the method's own (`timed_register`). Training: the default-scale "
            "method with the iteration counts of its smoke preset, on 2 training pairs. Dice is the mean over "
            f"labels, identity's in brackets.\n\n{table(rows, identity_dice)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout-min", type=float, default=15.0, help="per subprocess (train, register)")
    parser.add_argument("--mem-limit-gib", type=float, default=24.0)
    parser.add_argument("--out", type=Path, default=Path("results/real_sizes"))
    parser.add_argument("--preset", choices=["default", "paper"], default="default",
                        help="the methods' settings; paper: training measured per step (PAPER_STEPS)")
    parser.add_argument("--steps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="rewrite the table from OUT/real_sizes.json")
    parser.add_argument("--child", choices=["train", "register"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    elif args.report_only:
        saved = json.loads((args.out / "real_sizes.json").read_text())
        report = _report(saved["rows"], saved["identity_dice"], args)
        (args.out / "real_sizes.md").write_text(report)
        print(report)
    else:
        parent(args)


if __name__ == "__main__":
    main()
