"""Figures: titles, units and method colours on tiny inputs; the Pareto front on hand-made points; and, once
drawn, nothing clipped at the figure's edges, no legend over data, no method names over each other."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from regbench.report import plots
from regbench.report.palette import method_palette
from regbench.report.results import DICE, HD95_MM, SDLOGJ, TRE_KEYPOINTS
from regbench.report.slices import SliceView, checkerboard

PALETTE = method_palette(["identity", "affine", "iterative"])
ORDER = ["affine", "iterative", "identity"]
MANY = [f"{name}_{i}" for i, name in enumerate(["voxelmorph", "convexadam", "transmorph", "deformable_long"] * 3)]
MANY_PALETTE = method_palette(MANY)


def _drawn(figure: Figure) -> RendererBase:
    """Lay out and draw ``figure`` as ``save_figure`` does; the renderer gives every artist's extent."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _all_axes(figure: Figure) -> list[Axes]:
    """The figure's axes and their inset axes (the colour bars)."""
    return [a for ax in figure.axes for a in (ax, *ax.child_axes)]


def _undrawn_tick_labels(figure: Figure) -> set[int]:
    """ids of the tick labels of ticks outside their axis' view, which matplotlib leaves undrawn."""
    hidden = set()
    for ax in _all_axes(figure):
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 * abs(low) <= tick.get_loc() <= high + 1e-9 * abs(high):
                    hidden |= {id(tick.label1), id(tick.label2)}
    return hidden


def _clipped_texts(figure: Figure) -> list[str]:
    """The texts drawn beyond the figure's edges (cut off in the saved image)."""
    renderer = _drawn(figure)
    edges = figure.bbox.padded(1)
    hidden = _undrawn_tick_labels(figure)
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in figure.findobj(Text)
               if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    return [text for text, box in extents if not (edges.contains(box.x0, box.y0) and edges.contains(box.x1, box.y1))]


def _overlapping(texts: list[Text], renderer: RendererBase) -> list[tuple[str, str]]:
    """Pairs of texts whose drawn extents overlap."""
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def _data_under_legend(figure: Figure) -> int:
    """How many drawn data points (markers, line vertices) of the legend's axes lie under its box."""
    renderer = _drawn(figure)
    ax = next(ax for ax in figure.axes if ax.get_legend() is not None)
    box = ax.get_legend().get_window_extent(renderer)
    points = [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections]
    points += [line.get_transform().transform(line.get_xydata()) for line in ax.get_lines()]
    return int(sum(((p[:, 0] >= box.x0) & (p[:, 0] <= box.x1) & (p[:, 1] >= box.y0) & (p[:, 1] <= box.y1)).sum()
                   for p in points if len(p)))


def _many_cases(rng) -> pd.DataFrame:
    """Per-case Dice, SDlogJ and runtime of twelve methods spread over the whole plot area."""
    rows = [(m, f"p{i}", metric, value) for k, m in enumerate(MANY) for i in range(3)
            for metric, value in (("DSC", 0.3 + 0.05 * k + 0.01 * rng.random()),
                                  ("LogJacDetStd", 0.01 * ((5 * k) % 12) + 0.001 * rng.random()),
                                  ("Runtime_s", 10.0 ** (k % 6 - 3)))]
    return pd.DataFrame(rows, columns=["method", "pair", "metric", "value"])


def _cases(rng) -> pd.DataFrame:
    rows = [(m, f"p{i}", metric, value)
            for m, shift in zip(ORDER, (0.2, 0.3, 0.0), strict=True) for i in range(5)
            for metric, value in (("DSC", 0.5 + shift + 0.05 * rng.random()), ("HD95_mm", 6 - 10 * shift),
                                  ("LogJacDetStd", shift / 4 + 0.01 * rng.random()))]
    return pd.DataFrame(rows, columns=["method", "pair", "metric", "value"])


@pytest.mark.parametrize(("cost", "accuracy", "higher", "front"), [
    # (1, 0.5) is cheapest; (2, 0.8) costs more but is more accurate; (3, 0.7) is beaten by (2, 0.8)
    ([1, 2, 3], [0.5, 0.8, 0.7], True, [True, True, False]),
    # lower is better (TRE): (2, 3 mm) is beaten by (1, 2 mm), the cheapest and most accurate
    ([1, 2, 3], [2.0, 3.0, 1.0], False, [True, False, True]),
    # equal points do not dominate each other
    ([1, 1], [0.5, 0.5], True, [True, True]),
])
def test_pareto_front(cost, accuracy, higher, front):
    assert plots.pareto_front(cost, accuracy, higher_is_better=higher).tolist() == front


def test_case_metric_plot_has_a_panel_per_metric_with_units_and_method_colours(rng):
    figure = plots.case_metric_plot(_cases(rng), [DICE, HD95_MM, SDLOGJ], PALETTE, order=ORDER, title="brain_mr")
    axes = figure.axes
    assert figure.get_suptitle() == "brain_mr"
    assert [ax.get_ylabel() for ax in axes] == [DICE.label, "HD95 (mm)", SDLOGJ.label]
    assert axes[0].get_title() == "Dice (higher is better)" and axes[1].get_title() == "HD95 (lower is better)"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ORDER
    boxes = [to_hex(patch.get_facecolor()[:3]) for patch in axes[0].patches][:3]
    assert boxes == [PALETTE[m] for m in ORDER]


def test_runtime_tradeoff_marks_the_front_and_uses_a_log_axis():
    runtime = pd.Series({"identity": 1e-4, "affine": 0.5, "iterative": 20.0})
    accuracy = pd.Series({"identity": 0.4, "affine": 0.7, "iterative": 0.65})
    figure = plots.runtime_tradeoff_plot(runtime, accuracy, DICE, PALETTE, title="brain_mr")
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and "(s, log scale)" in ax.get_xlabel() and "Dice" in ax.get_ylabel()
    front_line = next(line for line in ax.get_lines() if line.get_label() == "Pareto front")
    assert list(front_line.get_xdata()) == [1e-4, 0.5]  # iterative is slower and less accurate than affine
    points = {c.get_label(): to_hex(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert points == {m: PALETTE[m] for m in runtime.index}


def test_plausibility_plot_axes(rng):
    figure = plots.plausibility_plot(_cases(rng), DICE, PALETTE, order=ORDER, title="brain_mr")
    ax = figure.axes[0]
    assert ax.get_xlabel() == SDLOGJ.label and ax.get_ylabel() == DICE.label
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ORDER


def test_heatmaps_are_annotated():
    scores = pd.DataFrame({"brain_mr": [1.0, 0.1], "thorax_ct": [0.55, 0.55], "score": [0.78, 0.33], "place": [1, 2]},
                          index=pd.Index(["affine", "identity"], name="method"))
    ax = plots.rank_heatmap(scores, PALETTE, title="Rank score per task").axes[0]
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.55", "0.78", "0.10", "0.55", "0.33"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["brain_mr", "thorax_ct", "mean"]
    means = pd.DataFrame({"liver": [0.9, 0.5]}, index=["affine", "identity"])
    label_ax = plots.label_heatmap(means, PALETTE, title="Dice per label").axes
    assert label_ax[1].get_ylabel() == "mean Dice"  # the colour bar says what the colours mean


def _view(rng, std: bool = False, shape: tuple[int, int] = (16, 12)) -> SliceView:
    grid = np.stack(np.meshgrid(np.arange(float(shape[0])), np.arange(float(shape[1])), indexing="ij"))
    jacobian = np.ones(shape)
    jacobian[3, 3] = -0.5
    return SliceView(rng.random(shape), grid, jacobian, rng.random(shape) if std else None)


def test_qualitative_panel_has_six_columns_per_method(rng):
    views = {"affine": _view(rng), "identity": _view(rng)}
    labels = np.zeros((16, 12), dtype=int)
    labels[4:10, 3:8] = 1
    figure = plots.qualitative_panel(rng.random((16, 12)), rng.random((16, 12)), views, PALETTE,
                                     fixed_labels=labels, title="cardiac_mr: pair p1")
    images = figure.axes[:12]
    assert [ax.get_title() for ax in images[:6]] == ["fixed", "moving", "warped moving", "warped - fixed",
                                                     "deformation grid", "det J"]
    assert [images[0].get_ylabel(), images[6].get_ylabel()] == ["affine", "identity"]
    assert len(images[4].get_lines()) > 10 and images[4].get_lines()[0].get_color() == PALETTE["affine"]
    assert {ax.get_xlabel() for ax in _all_axes(figure)[12:]} >= {"det J (1 = volume kept)"}


def test_uncertainty_panel_and_saving_png_and_svg(rng, tmp_path):
    figure = plots.uncertainty_panel({"affine": _view(rng, std=True)}, PALETTE, title="uncertainty")
    assert any(ax.get_xlabel() == "displacement std (voxels)" for ax in _all_axes(figure))
    paths = plots.save_figure(figure, tmp_path / "sub" / "uncertainty")
    assert [p.name for p in paths] == ["uncertainty.png", "uncertainty.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:500]


def test_many_long_method_names_stay_apart_and_inside_the_figure(rng):
    figure = plots.case_metric_plot(_many_cases(rng), [DICE, SDLOGJ], MANY_PALETTE, order=MANY, title="many")
    renderer = _drawn(figure)
    assert _overlapping(figure.axes[0].get_xticklabels(), renderer) == []
    assert _clipped_texts(figure) == []


def test_scatter_plots_name_methods_in_a_legend_that_covers_no_point(rng):
    cases = _many_cases(rng)
    means = cases.groupby(["metric", "method"])["value"].mean()
    runtime = plots.runtime_tradeoff_plot(means["Runtime_s"], means["DSC"], DICE, MANY_PALETTE, title="many")
    plausibility = plots.plausibility_plot(cases, DICE, MANY_PALETTE, order=MANY, title="many")
    for figure in (runtime, plausibility):
        assert _data_under_legend(figure) == 0
        assert _clipped_texts(figure) == []
        assert not any(t.get_text() in MANY for t in figure.axes[0].texts)  # no names drawn over the points


def test_tre_is_the_accuracy_axis_where_given():
    runtime = pd.Series({"identity": 1e-4, "affine": 0.5})
    tre = pd.Series({"identity": 12.0, "affine": 3.0})
    ax = plots.runtime_tradeoff_plot(runtime, tre, TRE_KEYPOINTS, PALETTE, title="thorax_ct").axes[0]
    assert ax.get_ylabel() == "mean TRE on keypoints (mm)" and "left and down" in ax.get_title()


def test_colour_bar_labels_and_titles_are_not_clipped(rng):
    views = {"affine": _view(rng, std=True), "identity": _view(rng, std=True)}
    scores = pd.DataFrame({"brain_mr": [1.0, 0.1], "abdomen_mrct": [0.55, 0.55], "score": [0.78, 0.33]},
                          index=pd.Index(["affine", "identity"], name="method"))
    figures = [plots.qualitative_panel(rng.random((16, 12)), rng.random((16, 12)), views, PALETTE, title="q"),
               plots.uncertainty_panel(views, PALETTE, title="uncertainty"),
               plots.rank_heatmap(scores, PALETTE, title="Rank score per task"),
               plots.label_heatmap(pd.DataFrame({"left_kidney": [0.9, 0.5]}, index=["affine", "identity"]),
                                   PALETTE, title="Dice per label")]
    assert [_clipped_texts(figure) for figure in figures] == [[]] * len(figures)


def test_image_rows_stay_aligned_beside_the_colour_bars(rng):
    # slices wider than tall leave their rows spare height, where colour bars under some columns used to
    # push those columns' images down, out of line with the rest of their row
    views = {"affine": _view(rng, shape=(40, 32)), "identity": _view(rng, shape=(40, 32))}
    figure = plots.qualitative_panel(rng.random((40, 32)), rng.random((40, 32)), views, PALETTE, title="q")
    renderer = _drawn(figure)
    for row in (figure.axes[:6], figure.axes[6:12]):
        boxes = np.array([ax.get_window_extent(renderer).extents for ax in row])  # x0, y0, x1, y1
        np.testing.assert_allclose(boxes[:, [1, 3]], np.broadcast_to(boxes[0, [1, 3]], (6, 2)), atol=1)
        np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], boxes[0, 2] - boxes[0, 0], atol=1)


def test_multimodal_pair_shows_a_checkerboard_not_a_difference(rng):
    # fixed all 0; moving all 100 (another modality's intensities), warped beyond its window: shown as 1
    fixed, moving = np.zeros((16, 12)), np.full((16, 12), 100.0)
    view = SliceView(np.full((16, 12), 1e3), _view(rng).grid, np.ones((16, 12)))
    figure = plots.qualitative_panel(fixed, moving, {"affine": view}, PALETTE, multimodal=True, title="mrct")
    compared = figure.axes[3]
    assert compared.get_title() == "checkerboard fixed | warped"
    shown = np.asarray(compared.get_images()[0].get_array()).T
    np.testing.assert_array_equal(shown, checkerboard(np.zeros((16, 12)), np.ones((16, 12))))
    assert "intensity difference (windowed)" not in {ax.get_xlabel() for ax in _all_axes(figure)}


def test_uncertainty_maps_share_one_colour_scale(rng):
    views = {"affine": _view(rng, std=True), "identity": _view(rng, std=True)}
    views["identity"] = SliceView(views["identity"].warped, views["identity"].grid, views["identity"].jacobian,
                                  3 * views["identity"].std)
    figure = plots.uncertainty_panel(views, PALETTE, title="uncertainty")
    limits = [ax.get_images()[0].get_clim() for ax in (figure.axes[1], figure.axes[3])]
    assert limits == [(0.0, pytest.approx(float(views["identity"].std.max())))] * 2


def test_validation_plot_shows_the_score_that_chose_the_state():
    # cardiac: Dice decides; thorax (keypoints): TRE decides, and the circle sits on the least TRE, not the best Dice
    curves = pd.DataFrame({
        "task": ["cardiac"] * 2 + ["thorax"] * 3, "method": ["vm"] * 5, "step": [50, 100, 50, 100, 150],
        "dice": [0.8, 0.9, 0.90, 0.95, 0.94], "tre_mm": [np.nan, np.nan, 3.0, 2.5, 2.0],
        "best": [False, True, False, False, True]})
    figure = plots.validation_plot(curves, {"vm": "#123456"})
    cardiac, thorax = figure.axes[:2]
    assert cardiac.get_ylabel() == "mean validation Dice" and thorax.get_ylabel() == "mean validation TRE (mm)"
    assert list(thorax.lines[0].get_ydata()) == [3.0, 2.5, 2.0]
    assert thorax.collections[0].get_offsets().tolist() == [[150.0, 2.0]]
