"""The report's figures, one function each: tables and arrays in, a matplotlib ``Figure`` out.

Figures are built without pyplot (``Figure`` objects, no global state), so they work in any backend-less
job and never leak memory across calls. Every figure has a title, axis labels with units, and colours from
one palette keyed by method name (``palette.method_palette``). ``save_figure`` writes PNG (for the page)
and SVG (for papers) side by side.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from regbench.report.results import SDLOGJ, Metric
from regbench.report.slices import SliceView, checkerboard

PNG_DPI = 110
GRID_LINES = 16  # deformation grid: about this many lines across the slice in each direction
STRIP_COLOUR = "0.2"
COLOUR_BAR_HEIGHT = 0.06  # of an image row: the colour bars get a row of their own under the images
JACOBIAN_TICKS = (0.5, 1.0, 1.5, 2.0)  # det J runs from 0 (below: folding, black) through 1 to 2


@contextmanager
def _style() -> Iterator[None]:
    """Seaborn's white grid at a size that stays readable when the PNG is shown at page width."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        yield


def save_figure(figure: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (without a creation date, so a re-run gives the same bytes).

    The layout is computed once, for the PNG, and kept for the SVG: it is most of the drawing time.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=PNG_DPI, metadata={"Software": None})
    figure.set_layout_engine("none")
    figure.savefig(paths[1], metadata={"Date": None})
    return paths


def _method_axis(ax: Axes, names: Sequence[str], palette: Mapping[str, str], *, axis: str = "x") -> None:
    """Colour the method tick labels like the method's marks; below the x axis, tilt them when there are
    several and stand them upright when there are many, each ending at its own tick, so that long names do
    not run into each other."""
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    rotation = 0 if axis != "x" or len(names) <= 3 else 45 if len(names) <= 6 else 90
    for label in labels:
        label.set_color(palette.get(label.get_text(), "black"))
        if rotation:
            label.set(rotation=rotation, horizontalalignment="right", verticalalignment="center",
                      rotation_mode="anchor")


def _legend_outside(ax: Axes) -> None:
    """The legend to the right of the axes, where it cannot cover a point (the layout makes room for it)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _colour_bar(figure: Figure, mappable: object, cell: Axes, label: str, *, extend: str = "neither",
                ticks: Sequence[float] | None = None) -> None:
    """A horizontal colour bar in ``cell``, an axes (turned off) of the figure's own colour-bar row; a tenth of
    its width is left free on each side for the end tick labels, which the layout does not make room for."""
    cax = cell.inset_axes((0.1, 0.0, 0.8, 1.0))
    figure.colorbar(mappable, cax=cax, orientation="horizontal", label=label, extend=extend, ticks=ticks)


def case_metric_plot(cases: pd.DataFrame, metrics: Sequence[Metric], palette: Mapping[str, str], *,
                     order: Sequence[str], title: str) -> Figure:
    """Box plots of the per-case values of each metric by method, every case drawn as a point on top.

    Args:
        cases: columns method, pair, metric, value (``results.case_table``).
        metrics: one panel each, in this order.
        order: methods from left to right (those without values are left out).
    """
    panel_width = max(3.2, 0.5 * len(order) + 1.0)  # room for every method's name under its box
    with _style():
        figure = Figure(figsize=(panel_width * len(metrics) + 0.5, 3.8), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            data = cases[cases["metric"] == metric.name]
            shown = [m for m in order if m in set(data["method"])]
            sns.boxplot(data=data, x="method", y="value", hue="method", order=shown, hue_order=shown,
                        palette=palette, saturation=1.0, showfliers=False, legend=False, ax=ax,
                        boxprops={"alpha": 0.6})
            sns.stripplot(data=data, x="method", y="value", order=shown, color=STRIP_COLOUR, size=3.5,
                          jitter=0.15, ax=ax)
            direction = "higher" if metric.higher_is_better else "lower"
            ax.set(title=f"{metric.short} ({direction} is better)", xlabel="method", ylabel=metric.label)
            _method_axis(ax, shown, palette)
        figure.suptitle(title)
    return figure


def rank_heatmap(scores: pd.DataFrame, palette: Mapping[str, str], *, title: str) -> Figure:
    """Learn2Reg rank scores, methods (rows, best first) by tasks (columns), annotated.

    Args:
        scores: the overall leaderboard (a column per task plus ``score``, the mean); other columns are ignored.
    """
    data = scores.drop(columns=[c for c in ("place",) if c in scores.columns])
    data = data.rename(columns={"score": "mean"})
    with _style():
        figure = Figure(figsize=(1.1 * data.shape[1] + 2.8, 0.5 * data.shape[0] + 1.8), layout="constrained")
        ax = figure.subplots()
        sns.heatmap(data, annot=True, fmt=".2f", vmin=0.1, vmax=1.0, cmap="viridis", linewidths=0.5, ax=ax,
                    cbar_kws={"label": "rank score (0.1 worst, 1 best)"})
        ax.set(title=title, xlabel="task", ylabel="method")
        ax.tick_params(axis="y", labelrotation=0)
        ax.tick_params(axis="x", labelrotation=30)
        _method_axis(ax, list(data.index), palette, axis="y")
    return figure


def pareto_front(cost: Sequence[float], accuracy: Sequence[float], *, higher_is_better: bool) -> np.ndarray:
    """Which points no other point dominates (as cheap or cheaper and as accurate or more, better in one).

    Returns:
        Boolean mask over the points.
    """
    cost = np.asarray(cost, dtype=float)
    score = np.asarray(accuracy, dtype=float) * (1 if higher_is_better else -1)
    front = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        no_worse = (cost <= cost[i]) & (score >= score[i])
        better = (cost < cost[i]) | (score > score[i])
        front[i] = not (no_worse & better).any()
    return front


def runtime_tradeoff_plot(runtime_s: pd.Series, accuracy: pd.Series, metric: Metric,
                          palette: Mapping[str, str], *, title: str) -> Figure:
    """Mean accuracy against mean runtime per pair (log scale), one point per method, Pareto front marked;
    methods are named in a legend beside the axes, never on top of the points.

    Args:
        runtime_s, accuracy: indexed by method; methods missing from either are left out.
    """
    data = pd.DataFrame({"runtime_s": runtime_s, "accuracy": accuracy}).dropna()
    data = data[data["runtime_s"] > 0]
    front = data[pareto_front(data["runtime_s"], data["accuracy"], higher_is_better=metric.higher_is_better)]
    front = front.sort_values("runtime_s")
    with _style():
        figure = Figure(figsize=(6.6, 4.0), layout="constrained")
        ax = figure.subplots()
        ax.step(front["runtime_s"], front["accuracy"], where="post", color="0.5", linestyle="--", zorder=1,
                label="Pareto front")
        for method, row in data.iterrows():
            ax.scatter(row["runtime_s"], row["accuracy"], s=70, color=palette[method], zorder=2,
                       edgecolor="black" if method in front.index else "none", label=method)
        ax.set_xscale("log")
        better = "up" if metric.higher_is_better else "down"
        ax.set(title=f"{title}\n(better: left and {better}; black edge: on the Pareto front)",
               xlabel="mean runtime per pair (s, log scale)", ylabel=f"mean {metric.label}")
        _legend_outside(ax)
    return figure


def plausibility_plot(cases: pd.DataFrame, accuracy: Metric, palette: Mapping[str, str], *,
                      order: Sequence[str], title: str) -> Figure:
    """Accuracy against SDlogJ: every case as a faint point, each method's mean as a large one with one
    standard deviation as error bars. Smooth fields (low SDlogJ) that are also accurate are what we want."""
    wide = cases[cases["metric"].isin([accuracy.name, SDLOGJ.name])]
    wide = wide.pivot_table(index=["method", "pair"], columns="metric", values="value").dropna().reset_index()
    with _style():
        figure = Figure(figsize=(6.6, 4.0), layout="constrained")
        ax = figure.subplots()
        for method in [m for m in order if m in set(wide["method"])]:
            rows = wide[wide["method"] == method]
            x, y = rows[SDLOGJ.name], rows[accuracy.name]
            ax.scatter(x, y, s=14, alpha=0.35, color=palette[method], edgecolor="none")
            ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=0), yerr=y.std(ddof=0), fmt="o", markersize=8,
                        color=palette[method], markeredgecolor="black", capsize=3, label=method)
        vertical = "up" if accuracy.higher_is_better else "down"
        ax.set(title=f"{title}\n(better: left and {vertical})", xlabel=SDLOGJ.label, ylabel=accuracy.label)
        _legend_outside(ax)
    return figure


def label_heatmap(means: pd.DataFrame, palette: Mapping[str, str], *, title: str,
                  value_label: str = "mean Dice") -> Figure:
    """Per-label values (methods as rows, labels as columns), annotated; Dice runs from 0 to 1."""
    with _style():
        figure = Figure(figsize=(0.8 * means.shape[1] + 3.2, 0.5 * means.shape[0] + 2.4), layout="constrained")
        ax = figure.subplots()
        sns.heatmap(means, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, cmap="viridis", linewidths=0.5, ax=ax,
                    annot_kws={"fontsize": 7}, cbar_kws={"label": value_label})
        ax.set(title=title, xlabel="label", ylabel="method")
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
        _method_axis(ax, list(means.index), palette, axis="y")
    return figure


def _display_range(image: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles: a window that neither noise nor a few bright voxels decide."""
    low, high = np.percentile(image, [1, 99])
    return float(low), float(high if high > low else low + 1)


def _normalised(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    return np.clip((image - low) / (high - low), 0, 1)


def _image(ax: Axes, data: np.ndarray, **kwargs) -> object:
    """Show a slice with array axis 0 across and axis 1 up, no ticks."""
    shown = ax.imshow(data.T, origin="lower", interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _deformation_grid(ax: Axes, grid: np.ndarray, colour: str) -> None:
    """Lines through the deformed positions of every k-th row and column of the slice's grid points."""
    width, height = grid.shape[1:]
    step = max(1, max(width, height) // GRID_LINES)
    for i in range(0, width, step):
        ax.plot(grid[0, i, :], grid[1, i, :], color=colour, linewidth=0.7)
    for j in range(0, height, step):
        ax.plot(grid[0, :, j], grid[1, :, j], color=colour, linewidth=0.7)
    ax.set(xlim=(-0.5, width - 0.5), ylim=(-0.5, height - 0.5), aspect="equal", xticks=[], yticks=[])


def qualitative_panel(fixed: np.ndarray, moving: np.ndarray, views: Mapping[str, SliceView],
                      palette: Mapping[str, str], *, fixed_labels: np.ndarray | None = None,
                      multimodal: bool = False, title: str) -> Figure:
    """One row per method: fixed, moving, warped moving (fixed label outlines on top), warped against fixed,
    the deformation grid, and det J (folding, det J <= 0, in black).

    Warped against fixed is their difference (each image scaled to its own 1-99 % window first) for one
    modality; for a ``multimodal`` pair, whose intensities do not correspond, a checkerboard of the two
    (``slices.checkerboard``), where misalignment shows as edges that jump at tile borders.
    """
    compare = "checkerboard fixed | warped" if multimodal else "warped - fixed"
    columns = ("fixed", "moving", "warped moving", compare, "deformation grid", "det J")
    fixed_window, moving_window = _display_range(fixed), _display_range(moving)
    jacobian_map = colormaps["PuOr_r"].with_extremes(under="black")
    outlines = [] if fixed_labels is None else [k for k in np.unique(fixed_labels) if k != 0]
    with _style():
        figure = Figure(figsize=(2.1 * len(columns) + 0.6, 2.2 * len(views) + 1.4), layout="constrained")
        grid = figure.subplots(len(views) + 1, len(columns), squeeze=False,
                               height_ratios=[1.0] * len(views) + [COLOUR_BAR_HEIGHT])
        axes, bars = grid[:-1], grid[-1]
        difference = jacobian = None
        for row, (method, view) in zip(axes, views.items(), strict=True):
            _image(row[0], fixed, cmap="gray", vmin=fixed_window[0], vmax=fixed_window[1])
            _image(row[1], moving, cmap="gray", vmin=moving_window[0], vmax=moving_window[1])
            _image(row[2], view.warped, cmap="gray", vmin=moving_window[0], vmax=moving_window[1])
            for label in outlines:
                row[2].contour((fixed_labels == label).T, levels=[0.5], colors="gold", linewidths=0.6)
            warped, target = _normalised(view.warped, moving_window), _normalised(fixed, fixed_window)
            if multimodal:
                _image(row[3], checkerboard(target, warped), cmap="gray", vmin=0, vmax=1)
            else:
                difference = _image(row[3], warped - target, cmap="RdBu_r", vmin=-1, vmax=1)
            _deformation_grid(row[4], view.grid, palette[method])
            jacobian = _image(row[5], view.jacobian, cmap=jacobian_map,
                              norm=TwoSlopeNorm(vmin=1e-6, vcenter=1.0, vmax=2.0))
            row[0].set_ylabel(method, color=palette[method], fontsize=11, fontweight="bold")
        for ax, name in zip(axes[0], columns, strict=True):
            ax.set_title(name)
        for ax in bars:
            ax.set_axis_off()
        if not multimodal:
            _colour_bar(figure, difference, bars[3], "intensity difference (windowed)")
        _colour_bar(figure, jacobian, bars[5], "det J (1 = volume kept)", extend="both", ticks=JACOBIAN_TICKS)
        figure.suptitle(title)
    return figure


def uncertainty_panel(views: Mapping[str, SliceView], palette: Mapping[str, str], *, title: str) -> Figure:
    """For each method with uncertainty: its warped moving image and the length of its displacement std, on
    one colour scale for all methods, so that they compare."""
    top = max(float(np.max(view.std)) for view in views.values()) or 1.0
    with _style():
        figure = Figure(figsize=(5.2, 2.4 * len(views) + 1.4), layout="constrained")
        grid = figure.subplots(len(views) + 1, 2, squeeze=False,
                               height_ratios=[1.0] * len(views) + [COLOUR_BAR_HEIGHT])
        shown = None
        for row, (method, view) in zip(grid[:-1], views.items(), strict=True):
            window = _display_range(view.warped)
            _image(row[0], view.warped, cmap="gray", vmin=window[0], vmax=window[1])
            shown = _image(row[1], view.std, cmap="magma", vmin=0, vmax=top)
            row[0].set_ylabel(method, color=palette[method], fontsize=11, fontweight="bold")
        grid[0, 0].set_title("warped moving")
        grid[0, 1].set_title("uncertainty")
        for ax in grid[-1]:
            ax.set_axis_off()
        _colour_bar(figure, shown, grid[-1, 1], "displacement std (voxels)")
        figure.suptitle(title)
    return figure


def validation_plot(curves: pd.DataFrame, palette: Mapping[str, str]) -> Figure:
    """Per task, each network's validation score against its training step (``report.results.
    validation_curves``), the kept (best) state circled: the mean TRE where the task's validation had keypoints
    (the score that chose the state), else the mean Dice."""
    tasks = list(dict.fromkeys(curves["task"]))
    with _style():
        figure = Figure(figsize=(4.2 * len(tasks) + 1.8, 3.4), layout="constrained")
        axes = figure.subplots(1, len(tasks), squeeze=False)[0]
        for ax, task in zip(axes, tasks):
            rows = curves[curves["task"] == task]
            score, label = (("tre_mm", "mean validation TRE (mm)") if rows["tre_mm"].notna().any()
                            else ("dice", "mean validation Dice"))
            for method, own in rows.groupby("method", sort=False):
                colour = palette.get(str(method), "0.4")
                ax.plot(own["step"], own[score], marker="o", markersize=3, color=colour, label=str(method))
                kept = own[own["best"].astype(bool)]
                ax.scatter(kept["step"], kept[score], s=90, facecolors="none", edgecolors=colour, zorder=3)
            ax.set(title=task, xlabel="training step", ylabel=label)
        handles, labels = [], []
        for ax in axes:  # every method once, whichever task it trained on
            for handle, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        figure.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    return figure


def robustness_plot(summary: pd.DataFrame, palette: Mapping[str, str]) -> Figure:
    """The robustness track: per task, each method's mean accuracy against the perturbation budget, from the
    clean pairs (budget 0) under random chains (solid) and under the adversarial chain (dashed)."""
    tasks = list(dict.fromkeys(summary["task"]))
    with _style():
        figure = Figure(figsize=(4.2 * len(tasks) + 1.8, 3.6), layout="constrained")
        axes = figure.subplots(1, len(tasks), squeeze=False)[0]
        for ax, task in zip(axes, tasks):
            rows = summary[summary["task"] == task]
            for method, own in rows.groupby("method", sort=False):
                own = own.sort_values("budget")
                clean = float(own["clean"].mean())
                for kind, style in (("random", "-"), ("adversarial", "--")):
                    ax.plot([0.0, *own["budget"]], [clean, *own[kind]], style, marker="o", markersize=3,
                            color=palette.get(str(method), "0.4"), label=str(method) if kind == "random" else None)
            ax.set(title=task, xlabel="budget (fraction of every bound)",
                   ylabel=f"mean {rows['metric'].iloc[0]}" + (" (mm)" if rows["metric"].iloc[0].startswith("TRE")
                                                               else ""))
        handles, labels = axes[-1].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
        figure.suptitle("Robustness: accuracy under random (solid) and adversarial (dashed) perturbation chains",
                        x=0.02, ha="left")
    return figure
