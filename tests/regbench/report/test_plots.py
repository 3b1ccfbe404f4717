"""Figures: titles, units and method colours on tiny inputs; the Pareto front on hand-made points."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from regbench.report import plots
from regbench.report.palette import method_palette
from regbench.report.results import DICE, HD95_MM, SDLOGJ
from regbench.report.slices import SliceView

PALETTE = method_palette(["identity", "affine", "iterative"])
ORDER = ["affine", "iterative", "identity"]


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


def _view(rng, std: bool = False) -> SliceView:
    grid = np.stack(np.meshgrid(np.arange(16.0), np.arange(12.0), indexing="ij"))
    jacobian = np.ones((16, 12))
    jacobian[3, 3] = -0.5
    return SliceView(rng.random((16, 12)), grid, jacobian, rng.random((16, 12)) if std else None)


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
    assert {ax.get_xlabel() for ax in figure.axes[12:]} >= {"det J (1 = volume kept)"}


def test_uncertainty_panel_and_saving_png_and_svg(rng, tmp_path):
    figure = plots.uncertainty_panel({"affine": _view(rng, std=True)}, PALETTE, title="uncertainty")
    assert any(ax.get_ylabel() == "displacement std (voxels)" for ax in figure.axes)
    paths = plots.save_figure(figure, tmp_path / "sub" / "uncertainty")
    assert [p.name for p in paths] == ["uncertainty.png", "uncertainty.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:500]
