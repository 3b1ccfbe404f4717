"""What the workflow's report rules call: a task's figures (``write_task_plots``), then the page
(``write_report``) with the overall figures and the HTML leaderboards beside it.

Each task's figures go to one folder with a ``figures.json`` that lists them with their captions, in the
order the page shows them; the page reads that list, so a figure a task cannot have (TRE on a task without
keypoints, uncertainty where no method reports any) is simply absent.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from regbench import io
from regbench.dataset import Task, read_dataset
from regbench.displacement import Displacement
from regbench.metrics.leaderboard import PLACE, load_metrics, not_scored, overall_tables, task_tables
from regbench.registry import method_class
from regbench.report import plots
from regbench.report.environment import environment
from regbench.report.html import (MethodSettings, PageFigure, ReportPage, RobustnessSection, SubgroupSection,
                                  TaskSection, TrainingSection, render_report)
from regbench.report.palette import method_palette
from regbench.report.results import (
    RUNTIME, SDLOGJ, Metric, case_table, label_means, method_means, present, primary_metric, read_benchmark,
    model_sources, representative_pair, validation_curves,
)
from regbench.report.slices import choose_slice, slice_view, take
from regbench.report.tables import leaderboard_html

log = logging.getLogger(__name__)
FIGURES_FILE = "figures.json"


@dataclass(frozen=True)
class Run:
    """One method on one task as the workflow ran it: its settings and the files it left.

    Attributes:
        overrides: the config overrides applied to the scale's preset (method-wide, then task-specific, then a
            variant's settings).
        registered: the registered method behind the row (a variant's method; None: the row's name).
        benchmarks: Snakemake ``benchmark:`` files by job kind (``register``, ``train``); absent ones are skipped.
    """

    task: str
    method: str
    metrics: str | Path
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    benchmarks: Mapping[str, str | Path] = dataclasses.field(default_factory=dict)
    registered: str | None = None


_READS_UNCERTAINTY = "uncertainty" in inspect.signature(io.read_disp).parameters


def _read_field(path: Path) -> Displacement:
    """A registration's field, with its std and samples where ``regbench.io`` reads uncertainty files."""
    return io.read_disp(path, uncertainty=True) if _READS_UNCERTAINTY else io.read_disp(path)


def _pair_figures(task: Task, pair_key: str, registrations: Mapping[str, str | Path], order: Sequence[str],
                  palette: Mapping[str, str], primary: Metric) -> list[tuple[str, Figure, str]]:
    """(name, figure, caption) of the qualitative panel of one pair and, for the methods that report it,
    of their uncertainty; methods without a field for the pair (failed) are left out."""
    pair_id = next(p for p in task.pair_ids("test") + task.pair_ids("val") if p.key == pair_key)
    pair = task.load_pair(pair_id)
    labels = None if pair.fixed.labels is None else pair.fixed.labels.data
    index = choose_slice(task.shape, labels)
    views = {}
    for method in order:
        path = io.find_disp(registrations[method], pair_id) if method in registrations else None
        if path is not None:
            views[method] = slice_view(pair.moving.image, _read_field(path), index)
    where = "" if index is None else f", slice {index} of the last axis"
    panel = plots.qualitative_panel(
        take(pair.fixed.image.data, index), take(pair.moving.image.data, index), views, palette,
        fixed_labels=None if labels is None else take(labels, index), multimodal=pair.multimodal,
        title=f"{task.name}: pair {pair_id.key}{where}")
    compared = (f"a checkerboard of fixed ({pair.fixed.modality or 'one modality'}) and warped "
                f"({pair.moving.modality or 'another'}) tiles, where edges that run on across tile borders show "
                "alignment (their intensities do not correspond, so a difference would show contrast, not error)"
                if pair.multimodal else "their difference")
    figures = [("qualitative", panel,
                f"A typical pair ({pair_id.key}, median {primary.short} over methods{where}): fixed and moving "
                f"images, the warped moving image with the fixed labels outlined, {compared}, the deformed "
                "grid and the Jacobian determinant (black: folding).")]
    uncertain = {m: v for m, v in views.items() if v.std is not None}
    if uncertain:
        title = f"{task.name}: uncertainty, pair {pair_id.key}"
        figures.append(("uncertainty", plots.uncertainty_panel(uncertain, palette, title=title),
                        "The length of the displacement's standard deviation for methods that report one."))
    return figures


def write_task_plots(dataset: str | Path, metrics: Mapping[str, str | Path], registrations: Mapping[str, str | Path],
                     board: str | Path, out_dir: str | Path, *, methods: Sequence[str]) -> list[Path]:
    """Every figure of one task into ``out_dir`` (PNG and SVG) and their list into ``figures.json``.

    Args:
        dataset: the task's Learn2Reg folder.
        metrics, registrations: each method's ``metrics.csv`` and registration folder on this task.
        board: the task's leaderboard CSV (methods are shown in its order, best first).
        methods: every method of the run, so colours match across tasks (``method_palette``).
    """
    task = read_dataset(dataset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    palette = method_palette(methods)
    order = list(pd.read_csv(board, index_col="method").index)
    table = load_metrics(dict(metrics))
    cases = case_table(table)
    primary = primary_metric(cases)
    figures: list[dict[str, str]] = []

    def add(name: str, figure: Figure, caption: str) -> None:
        plots.save_figure(figure, out_dir / name)
        figures.append({"name": name, "caption": caption})

    shown = present(cases)
    if shown:
        add("case_metrics", plots.case_metric_plot(cases, shown, palette, order=order,
                                                   title=f"{task.name}: per-case metrics by method"),
            "Per-case values by method (a box per method, a point per case); failed cases are left out.")
    if primary is not None and RUNTIME.name in set(cases["metric"]):
        add("runtime_tradeoff", plots.runtime_tradeoff_plot(
            method_means(cases, RUNTIME), method_means(cases, primary), primary, palette,
            title=f"{task.name}: accuracy against runtime"),
            f"Mean {primary.short} against the mean registration time per pair (the method's own time, "
            "IO excluded); methods no other method beats on both are on the Pareto front.")
    if primary is not None and SDLOGJ.name in set(cases["metric"]):
        add("plausibility", plots.plausibility_plot(cases, primary, palette, order=order,
                                                    title=f"{task.name}: accuracy against plausibility"),
            f"{primary.short} against SDlogJ, the spread of the log Jacobian determinant (smoothness of the "
            "field): small points are cases, large ones means with one standard deviation.")
    per_label = label_means(table, task.labels)
    if not per_label.empty:
        add("label_dice", plots.label_heatmap(per_label.reindex([m for m in order if m in per_label.index]),
                                              palette, title=f"{task.name}: Dice per label"),
            "Mean Dice of each label over the scored cases.")
    pair_key = representative_pair(cases, primary) if primary is not None else None
    if pair_key is not None:
        for name, figure, caption in _pair_figures(task, pair_key, registrations, order, palette, primary):
            add(name, figure, caption)
    with io.atomic_path(out_dir / FIGURES_FILE) as tmp:
        tmp.write_text(json.dumps(figures, indent=2))
    log.info("%s: %d figures in %s", task.name, len(figures), out_dir)
    return [out_dir / f"{f['name']}.png" for f in figures]


def generative_summary(evaluation: pd.DataFrame) -> pd.DataFrame:
    """The generative model's evaluation table (``regbench.generative.evaluation``) as the report shows it: per
    analysis and measure, each model's value over the later frames, the mean over the generation cells or the
    whole cohort, and the phantom's value where it has one."""
    rows = evaluation.assign(key=evaluation["analysis"] + " / " + evaluation["measure"])
    rows = rows[(rows["analysis"] != "completion") | (rows["group"] == "later frames")]
    values = rows.groupby(["key", "model"], sort=False)["value"].mean().unstack("model")
    phantom = rows.groupby("key", sort=False)["phantom"].mean()
    return values.assign(phantom=phantom)


def resolved_settings(method: str, scale: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters a method ran with: the scale's preset with the overrides applied, nested
    settings flattened to dotted names."""
    params = method_class(method).Params.preset(scale).replace(**overrides)

    def flatten(prefix: str, value: Any) -> dict[str, Any]:
        if dataclasses.is_dataclass(value):
            return {k: v for f in dataclasses.fields(value)
                    for k, v in flatten(f"{prefix}{f.name}.", getattr(value, f.name)).items()}
        return {prefix.rstrip("."): value}

    return flatten("", params)


def _method_settings(runs: Sequence[Run], method: str, scale: str) -> MethodSettings:
    """A method's hyperparameters per task (one column when all tasks agree) and its costs per task."""
    mine = [r for r in runs if r.method == method]
    settings = pd.DataFrame({r.task: pd.Series(resolved_settings(r.registered or method, scale, r.overrides),
                                               dtype=object) for r in mine})
    overridden = {name for r in mine for name in r.overrides}
    if settings.shape[1] > 1 and settings.astype(str).nunique(axis=1).eq(1).all():
        settings = settings.iloc[:, :1].set_axis(["all tasks"], axis=1)
    costs = []
    for run in mine:
        cases = case_table(load_metrics({method: run.metrics}))
        register = read_benchmark(run.benchmarks["register"]) if "register" in run.benchmarks else {}
        train = read_benchmark(run.benchmarks["train"]) if "train" in run.benchmarks else {}
        costs.append({"task": run.task,
                      "runtime per pair (s)": method_means(cases, RUNTIME).get(method),
                      "register job (s)": register.get("s"), "register peak memory (MB)": register.get("max_rss"),
                      "train job (s)": train.get("s"), "train peak memory (MB)": train.get("max_rss")})
    costs_table = pd.DataFrame(costs).set_index("task").dropna(axis=1, how="all")
    return MethodSettings(method, settings, overridden, costs_table)


def write_report(config: Mapping[str, Any], boards: Mapping[str, str | Path], overall: str | Path,
                 plot_dirs: Mapping[str, str | Path], runs: Sequence[Run], out_html: str | Path,
                 tables_dir: str | Path, overview_dir: str | Path, robustness: str | Path | None = None,
                 subgroups: Mapping[str, str | Path] | None = None, generative: str | Path | None = None,
                 claims: str | Path | None = None,
                 curves: Mapping[tuple[str, str], str | Path] | None = None,
                 sources: Mapping[tuple[str, str], str | Path] | None = None) -> Path:
    """The report page, ``out_html`` (figures embedded, so the file stands alone; SVGs linked beside it),
    the leaderboards as HTML tables into ``tables_dir`` and the overall figures into ``overview_dir``.

    Args:
        config: the workflow configuration the run used (tasks, methods, scale, seeds, overrides).
        boards: each task's leaderboard CSV; ``overall``: the overall leaderboard CSV.
        plot_dirs: each task's figure folder (``write_task_plots``).
        runs: every (task, method) the workflow ran.
        robustness: the robustness track's summary CSV, where the run included the track.
        subgroups: each subgroup table (``metrics.subgroups``) by task, where a task records covariates.
        generative: the generative model's ``evaluation.csv``, where it ran.
        claims: the claims table (``metrics.claims``), where the run made one.
        curves: each trained (task, method)'s validation curve (``regbench.training``), for the training figure.
        sources: each trained (task, method)'s provenance file (``regbench.pretrained``): shipped or trained here.
    """
    out_html, tables_dir, overview_dir = Path(out_html), Path(tables_dir), Path(overview_dir)
    methods = [*map(str, config["methods"]), *map(str, config.get("variants") or {})]  # rows with settings
    palette = method_palette(run.method for run in runs)  # every row, <method>+io ones included
    overall_board = pd.read_csv(overall, index_col="method")
    task_columns = frozenset(boards)
    tables = {"overall": leaderboard_html(overall_tables(overall_board), caption="Overall", palette=palette,
                                          task_columns=task_columns)}
    sections = []
    for task, board_path in boards.items():
        board = pd.read_csv(board_path, index_col="method")
        tables[task] = leaderboard_html(task_tables(board), caption=f"Leaderboard: {task}", palette=palette)
        listed = json.loads((Path(plot_dirs[task]) / FIGURES_FILE).read_text())
        figures = [PageFigure(Path(plot_dirs[task]) / f"{f['name']}.png", f["caption"]) for f in listed]
        best = [str(m) for m in board.index[board[PLACE] == board[PLACE].min()]]
        reasons = not_scored({r.method: r.metrics for r in runs if r.task == task})
        sections.append(TaskSection(task, tables[task], figures, int(board["failed"].sum()), best, reasons))
    tables_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        with io.atomic_path(tables_dir / f"{name}.html") as tmp:
            tmp.write_text(f"<!DOCTYPE html><meta charset='utf-8'><title>{name}</title>{table}\n")
    heatmap = plots.save_figure(plots.rank_heatmap(overall_board, palette, title="Rank score per task"),
                                overview_dir / "rank_heatmap")[0]
    track = None
    if robustness is not None:
        summary = pd.read_csv(robustness)
        figure = plots.save_figure(plots.robustness_plot(summary, palette), overview_dir / "robustness")[0]
        track = RobustnessSection(summary, PageFigure(figure, "Mean accuracy against the perturbation budget: clean pairs at 0, random chains "
                               "solid, the adversarial chain dashed."))
    training = None
    if sources:
        curve_table = validation_curves(curves or {})
        figure = None if curve_table.empty else PageFigure(
            plots.save_figure(plots.validation_plot(curve_table, palette), overview_dir / "validation")[0],
            "Mean Dice on the validation pairs while each network trained (the state kept, the best, circled); a "
            "curve still rising at its end was stopped short of convergence.")
        training = TrainingSection(model_sources(sources), figure)
    page = ReportPage(
        config=dict(config), overall_table=tables["overall"],
        overall_figure=PageFigure(heatmap, "Learn2Reg rank score of every method on every task (0.1: worst "
                                       "or absent, 1: best) and their mean, which orders the overall ranking."),
        best=[str(m) for m in overall_board.index[overall_board[PLACE] == overall_board[PLACE].min()]],
        tasks=sections,
        methods=[_method_settings(runs, m, str(config["scale"])) for m in methods if any(r.method == m for r in runs)],
        environment=environment(), palette=palette, robustness=track,
        subgroups=[SubgroupSection(task, pd.read_csv(path)) for task, path in (subgroups or {}).items()],
        generative=None if generative is None else generative_summary(pd.read_csv(generative)),
        training=training,
        claims=None if claims is None else pd.read_csv(claims, keep_default_na=False, na_values=[""]))
    with io.atomic_path(out_html) as tmp:
        tmp.write_text(render_report(page, out_html.parent))
    return out_html
