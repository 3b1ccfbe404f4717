"""A task's figures and the report page, end to end on a smoke-scale 2D task with hand-made fields: one
method with zero fields, one with smooth fields that carry a std (so the uncertainty figure appears)."""

from __future__ import annotations

import base64
import inspect
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from regbench import io
from regbench.displacement import Displacement
from regbench.metrics.claims import claims_table
from regbench.metrics.evaluate import evaluate_folder, write_evaluation
from regbench.metrics.leaderboard import (
    SUBSTITUTE_MARK, load_metrics, overall_tables, task_leaderboard, task_tables, write_table,
)
from regbench.metrics.ranking import overall_leaderboard
from regbench.pretrained import SHIPPED, TRAINED, write_provenance
from regbench.report import build
from regbench.report.build import FIGURES_FILE, Run, resolved_settings, write_report, write_task_plots
from regbench.report.palette import method_palette
from regbench.report.results import DICE

METHODS = ["identity", "affine"]
READS_UNCERTAINTY = "uncertainty" in inspect.signature(io.read_disp).parameters


class _References(HTMLParser):
    """``src`` of every image and ``href`` of every link, and the ``id`` of every section."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        elif tag == "a":
            self.links.append(values["href"] or "")
        elif tag == "section":
            self.sections.append(values["id"] or "")


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    noise = rng.normal(size=(*shape, len(shape)))
    return np.stack([ndimage.gaussian_filter(noise[..., c], 4) * 20 for c in range(len(shape))], -1)


@pytest.fixture(scope="module")
def results(generated_task, tmp_path_factory):
    """A run of two methods on cardiac_mr (smoke) as the workflow leaves it: registrations, metrics, boards."""
    task = generated_task("cardiac_mr", "smoke")
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(20261130)
    pairs = task.pair_ids("test")
    metrics = {}
    for method in METHODS:
        folder = root / "registrations" / method
        for pair in pairs:
            if method == "identity":
                disp = Displacement.zeros(task.shape)
            else:
                data = _smooth_field(rng, task.shape).astype(np.float32)
                disp = Displacement(data, std=np.full_like(data, 0.5))
            io.write_disp(folder / f"{pair.disp_stem}.nii.gz", disp)
        evaluation = evaluate_folder(task, folder, split="test", runtimes={p: 0.01 + 0.5 * (method == "affine")
                                                                            for p in pairs})
        write_evaluation(evaluation, root / "metrics" / method)
        metrics[method] = root / "metrics" / method / "metrics.csv"
    board = task_leaderboard(load_metrics(metrics))
    write_table(board, root / "leaderboard" / "cardiac_mr", title="Leaderboard: cardiac_mr", tables=task_tables(board))
    overall = overall_leaderboard({"cardiac_mr": board})
    write_table(overall, root / "leaderboard" / "overall", title="Overall leaderboard", tables=overall_tables(overall))
    return task, root, metrics


@pytest.fixture(scope="module")
def task_plots(results):
    """The figures of the task, written once: their PNG paths and folder."""
    task, root, metrics = results
    out_dir = root / "plots" / "cardiac_mr"
    written = write_task_plots(task.root, metrics, {m: root / "registrations" / m for m in METHODS},
                               root / "leaderboard" / "cardiac_mr.csv", out_dir, methods=METHODS)
    return written, out_dir


def test_task_plots_lists_every_figure_it_wrote(task_plots):
    written, out_dir = task_plots
    listed = json.loads((out_dir / FIGURES_FILE).read_text())
    names = [figure["name"] for figure in listed]
    expected = ["case_metrics", "runtime_tradeoff", "plausibility", "label_dice", "qualitative"]
    assert names == expected + (["uncertainty"] if READS_UNCERTAINTY else [])
    assert [p.stem for p in written] == names
    assert all(p.is_file() and p.with_suffix(".svg").is_file() for p in written)
    assert all(figure["caption"] for figure in listed)


def test_report_page_embeds_every_figure_and_states_settings(results, task_plots):
    _, root, metrics = results
    written, plot_dir = task_plots
    config = {"tasks": ["cardiac_mr"], "methods": METHODS, "scale": "smoke", "seed": None, "method_seed": 0,
              "split": "test", "device": "cpu", "overrides": {"affine": {"lr": 0.05}}, "task_overrides": {}}
    runs = [Run("cardiac_mr", m, metrics[m], config["overrides"].get(m, {})) for m in METHODS]
    page = write_report(config, {"cardiac_mr": root / "leaderboard" / "cardiac_mr.csv"},
                        root / "leaderboard" / "overall.csv", {"cardiac_mr": plot_dir}, runs, root / "report.html",
                        root / "leaderboard" / "html", root / "plots" / "overall")
    text = page.read_text()
    references = _References()
    references.feed(text)
    assert references.sections == ["overview", "ranking", "task-cardiac-mr", "methods", "environment", "reproduce"]
    # the rank heat-map and every task figure, each a PNG embedded in the page
    assert len(references.images) == 1 + len(written)
    for src in references.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    svgs = [link for link in references.links if link.endswith(".svg")]
    assert len(svgs) == len(references.images) and all((page.parent / link).is_file() for link in svgs)
    # the override is in the settings table, highlighted, with the value used
    assert '<tr class="override"><th scope="row">lr</th><td>0.05</td></tr>' in text
    assert "method_seed: 0" in text and "snakemake --cores all --keep-going" in text
    assert {p.name for p in (root / "leaderboard" / "html").iterdir()} == {"cardiac_mr.html", "overall.html"}
    # the leaderboard as the Markdown shows it: ranking, then uncertainty for the method that reports one
    assert "<caption>Leaderboard: cardiac_mr – Ranking</caption>" in text
    uncertainty = text.split("Leaderboard: cardiac_mr – Uncertainty", 1)[1].split("</table>", 1)[0]
    assert "affine</th>" in uncertainty and "identity</th>" not in uncertainty
    assert f"1.5{SUBSTITUTE_MARK}" in text  # identity's SDlogJ, a substitute
    # the environment names the tools benchmarked and the commit
    environment = text.split('id="environment"', 1)[1]
    assert all(f'<th scope="row">{name}</th>' in environment
               for name in ("regbench commit", "antspyx", "itk-elastix", "torch", "snakemake"))


def test_the_claims_table_and_the_training_get_sections(results, task_plots):
    _, root, metrics = results
    _, plot_dir = task_plots
    table = claims_table({"cardiac_mr": load_metrics(metrics)})
    table.to_csv(root / "claims.csv", index=False)
    pd.DataFrame({"step": [10, 20], "dice": [0.7, 0.8], "best": [False, True]}).to_csv(root / "curve.csv", index=False)
    pd.DataFrame(columns=["step", "dice", "best"]).to_csv(root / "no_curve.csv", index=False)
    write_provenance(root / "trained.json", TRAINED, "--config train=scratch", {})
    write_provenance(root / "shipped.json", SHIPPED, "loaded the model shipped in regbench/pretrained/cardiac_mr", {})
    config = {"tasks": ["cardiac_mr"], "methods": METHODS, "scale": "smoke", "seed": None, "method_seed": 0,
              "split": "test", "device": "cpu", "overrides": {}, "task_overrides": {}}
    runs = [Run("cardiac_mr", m, metrics[m], {}) for m in METHODS]
    page = write_report(config, {"cardiac_mr": root / "leaderboard" / "cardiac_mr.csv"},
                        root / "leaderboard" / "overall.csv", {"cardiac_mr": plot_dir}, runs,
                        root / "claims_report.html", root / "leaderboard" / "html", root / "plots" / "overall",
                        claims=root / "claims.csv",
                        curves={("cardiac_mr", "affine"): root / "curve.csv", ("cardiac_mr", "mad"): root / "no_curve.csv"},
                        sources={("cardiac_mr", "affine"): root / "trained.json", ("cardiac_mr", "mad"): root / "shipped.json"})
    references = _References()
    references.feed(page.read_text())
    assert references.sections[-5:] == ["training", "claims", "methods", "environment", "reproduce"]
    assert (root / "plots" / "overall" / "validation.png").is_file()
    training = page.read_text().split('<section id="training">', 1)[1].split("</section>", 1)[0]
    assert ('<th scope="row">cardiac_mr</th><td class="text">affine</td><td class="text">trained here</td>'
            '<td class="text">--config train=scratch</td>') in training
    assert '<td class="text">mad</td><td class="text">shipped</td>' in training
    section = page.read_text().split('<section id="claims">', 1)[1].split("</section>", 1)[0]
    assert section.count("<tr>") == len(table) + 1
    assert "not testable here" in section  # neither identity nor affine is a method the seed papers claim about


def test_a_multimodal_pair_is_compared_on_a_checkerboard(generated_task, tmp_path):
    task = generated_task("abdomen_mrct", "smoke")  # MR fixed, CT moving
    pair = task.pair_ids("test")[0]
    io.write_disp(tmp_path / "identity" / f"{pair.disp_stem}.nii.gz", Displacement.zeros(task.shape))
    [(name, figure, caption)] = build._pair_figures(task, pair.key, {"identity": tmp_path / "identity"},
                                                    ["identity"], method_palette(["identity"]), DICE)
    assert name == "qualitative" and figure.axes[3].get_title() == "checkerboard fixed | warped"
    assert "a checkerboard of fixed (MR) and warped (CT) tiles" in caption


def test_resolved_settings_apply_overrides_to_the_scale_preset():
    settings = resolved_settings("affine", "smoke", {"lr": 0.05})
    assert settings["lr"] == 0.05 and settings["iterations"] == (60,)  # the smoke preset's own value
    assert pd.Series(resolved_settings("identity", "smoke", {})).empty
