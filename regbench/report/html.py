"""The report page: one HTML file a person can open, mail or archive, with every figure embedded.

Sections, in reading order: overview, overall ranking, one per task (leaderboard and figures), the methods'
settings and costs, the environment, and how to reproduce the run. PNGs are embedded as base64 data URIs so
the file stands alone; each figure links its SVG beside the page (relative path) for print quality. No
script and no external resource: the page renders the same offline and in ten years.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from regbench.report.tables import format_value

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 1.5rem 3rem; color: #222; line-height: 1.45; }
header { border-bottom: 2px solid #444; margin-bottom: 1rem; }
nav { position: sticky; top: 0; background: #fff; padding: 0.4rem 0; border-bottom: 1px solid #ddd; z-index: 1; }
nav a { margin-right: 0.9rem; text-decoration: none; color: #1f5fa8; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2.2rem; }
section { scroll-margin-top: 2.6rem; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.88rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: right; }
th[scope=row], td.text { text-align: left; }
th[scope=row] { white-space: nowrap; }
thead th { background: #f0f0f0; text-align: center; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
td.best { font-weight: 700; background: #d8f0d8; }
td.failed { color: #b00020; font-weight: 700; background: #fde7ea; }
tr.override td, tr.override th { background: #fff6d6; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px;
          vertical-align: baseline; }
figure { margin: 1rem 0 1.8rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #444; max-width: 60rem; }
pre { background: #f6f6f6; padding: 0.7rem; overflow-x: auto; font-size: 0.85rem; }
.note { color: #555; font-size: 0.9rem; }
ul.note { margin: -0.6rem 0 1.4rem; max-width: 60rem; }
"""


@dataclass(frozen=True)
class PageFigure:
    """A figure of the page: its PNG (embedded; the SVG of the same stem is linked) and caption."""

    png: Path
    caption: str


@dataclass(frozen=True)
class TaskSection:
    """One task: its leaderboard (HTML), figures, failed cases over all methods and the best methods (more
    than one where the ranking ties them)."""

    task: str
    table: str
    figures: Sequence[PageFigure]
    failed: int
    best: Sequence[str]
    not_scored: Mapping[str, str] = field(default_factory=dict)  # metric -> why the data cannot give it


@dataclass(frozen=True)
class MethodSettings:
    """One method: hyperparameters (rows) per task or for all tasks (columns), the names the config
    overrode, and its costs per task (runtime per pair, job wall times, peak memory)."""

    method: str
    settings: pd.DataFrame
    overridden: set[str]
    costs: pd.DataFrame


@dataclass(frozen=True)
class TrainingSection:
    """Where each network's model came from (shipped or trained here, and why) and the validation curves of those
    the run trained (None when none was validated)."""

    sources: pd.DataFrame  # task, method, model, why (``report.results.model_sources``)
    figure: PageFigure | None


@dataclass(frozen=True)
class RobustnessSection:
    """The robustness track: its summary table (``metrics.adversarial``) and the accuracy-against-budget figure."""

    summary: pd.DataFrame
    figure: PageFigure


@dataclass(frozen=True)
class SubgroupSection:
    """A task's subgroup analysis (``metrics.subgroups``): every method's accuracy per subgroup of subjects."""

    task: str
    table: pd.DataFrame


@dataclass(frozen=True)
class ReportPage:
    """Everything the page shows."""

    config: Mapping[str, Any]
    overall_table: str
    overall_figure: PageFigure
    best: Sequence[str]
    tasks: Sequence[TaskSection]
    methods: Sequence[MethodSettings]
    environment: Mapping[str, str]
    palette: Mapping[str, str] = field(default_factory=dict)
    robustness: RobustnessSection | None = None  # where the run included the track
    subgroups: Sequence[SubgroupSection] = ()  # tasks whose subjects have covariates
    generative: pd.DataFrame | None = None  # the generative model's evaluation summary, where it ran
    claims: pd.DataFrame | None = None  # the seed papers' claims checked on the run (metrics.claims)
    training: TrainingSection | None = None  # the networks' models: shipped or trained, validation curves


def _e(text: object) -> str:
    return html.escape(str(text))


def _slug(name: str) -> str:
    return "task-" + "".join(c if c.isalnum() else "-" for c in name)


def _figure(figure: PageFigure, base: Path, number: int) -> str:
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    svg = figure.png.with_suffix(".svg")
    link = (f' <a href="{_e(Path(os.path.relpath(svg, base)).as_posix())}">SVG</a>' if svg.is_file() else "")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.caption)}">'
            f"<figcaption><b>Figure {number}.</b> {_e(figure.caption)}{link}</figcaption></figure>")


def _swatch(method: str, palette: Mapping[str, str]) -> str:
    colour = palette.get(method)
    return f'<span class="swatch" style="background:{colour}"></span>' if colour else ""


def _frame_html(frame: pd.DataFrame, *, caption: str, index_name: str, highlight: Collection[str] = ()) -> str:
    """A plain table of ``frame``; rows named in ``highlight`` (or nested under a name there, ``a.b`` under
    ``a``) get ``class="override"``."""
    header = "".join(f"<th>{_e(c)}</th>" for c in [index_name, *frame.columns])
    rows = []
    for name, row in frame.iterrows():
        css = ' class="override"' if str(name).split(".", 1)[0] in highlight else ""
        cells = "".join(f'<td class="text">{_e(v)}</td>' if isinstance(v, (str, bool, tuple, type(None)))
                        else f"<td>{format_value(v)}</td>" for v in row)
        rows.append(f'<tr{css}><th scope="row">{_e(name)}</th>{cells}</tr>')
    return (f"<table><caption>{_e(caption)}</caption><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _methods_list(methods: Sequence[str], palette: Mapping[str, str]) -> str:
    """Method names with their colour swatches; "(tied)" after more than one."""
    names = ", ".join(f"{_swatch(m, palette)}<b>{_e(m)}</b>" for m in methods)
    return names + (" (tied)" if len(methods) > 1 else "")


def _overview(page: ReportPage) -> str:
    config = page.config
    failed = sum(t.failed for t in page.tasks)
    rows = "".join(f'<tr><th scope="row"><a href="#{_slug(t.task)}">{_e(t.task)}</a></th>'
                   f'<td class="text">{_methods_list(t.best, page.palette)}</td>'
                   f'<td{" class=failed" if t.failed else ""}>{t.failed}</td></tr>' for t in page.tasks)
    return (f'<section id="overview"><h2>Overview</h2>'
            f"<p>{len(config['methods'])} methods ({_e(', '.join(map(str, config['methods'])))}) on "
            f"{len(config['tasks'])} tasks at scale <b>{_e(config['scale'])}</b>, scored on the "
            f"<b>{_e(config.get('split', 'test'))}</b> pairs as the Learn2Reg challenge scores them. "
            f"Best overall: {_methods_list(page.best, page.palette)}. "
            f"Failed cases: <b>{failed}</b> (scored as Learn2Reg scores a missing case).</p>"
            "<table><caption>Tasks</caption><thead><tr><th>task</th><th>best (place 1)</th><th>failed cases</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></section>")


def _task_section(section: TaskSection, base: Path, start: int) -> str:
    figures = "".join(_figure(f, base, start + i) for i, f in enumerate(section.figures))
    return (f'<section id="{_slug(section.task)}"><h2>Task: {_e(section.task)}</h2>'
            f'<div class="wide">{section.table}</div>'
            '<p class="note">Bold green: best measured value in its column. The notes under each table say '
            "what its columns mean.</p>"
            f"{_not_scored(section.not_scored)}{figures}</section>")


def _not_scored(reasons: Mapping[str, str]) -> str:
    """The metrics a task's data could not give (hidden test labels, unpublished keypoints), with why."""
    if not reasons:
        return ""
    items = "".join(f"<li><b>{_e(metric)}</b>: {_e(reason)}</li>" for metric, reason in reasons.items())
    return f'<div class="note"><p><b>Not scored</b> (the data to compute them is absent):</p><ul>{items}</ul></div>'



def _methods(page: ReportPage) -> str:
    parts = ['<section id="methods"><h2>Methods: settings and costs</h2>'
             f'<p class="note">Hyperparameters actually used: the <b>{_e(page.config["scale"])}</b> preset of '
             "each method with the configuration's overrides applied (highlighted rows were overridden); "
             f"method seed {_e(page.config.get('method_seed'))}, device {_e(page.config.get('device', 'cpu'))} "
             "for the methods that can use a GPU. Runtime per pair is the method's own time, IO excluded; job "
             "times and peak memory come from Snakemake's benchmark files.</p>"]
    for entry in page.methods:
        parts.append(f"<h3>{_swatch(entry.method, page.palette)}{_e(entry.method)}</h3>")
        if entry.settings.empty:
            parts.append('<p class="note">No hyperparameters.</p>')
        else:
            parts.append(_frame_html(entry.settings, caption="hyperparameters", index_name="setting",
                                     highlight=entry.overridden))
        if not entry.costs.empty:
            parts.append(_frame_html(entry.costs, caption="costs", index_name="task"))
    return "".join(parts) + "</section>"


def _environment(page: ReportPage) -> str:
    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td class="text">{_e(v)}</td></tr>'
                   for k, v in page.environment.items())
    return (f'<section id="environment"><h2>Environment</h2><table><tbody>{rows}</tbody></table>'
            '<p class="note">Of the job that wrote this report; on a cluster the registration jobs may have run '
            "on other nodes.</p></section>")


def _reproduce(page: ReportPage) -> str:
    config = yaml.safe_dump(dict(page.config), sort_keys=False, default_flow_style=False)
    return ('<section id="reproduce"><h2>Reproduce</h2>'
            "<p>Install regbench as the README says, save the configuration below as "
            "<code>config/config.yaml</code> and run, from the repository root:</p>"
            "<pre>snakemake --cores all --keep-going\n"
            f"snakemake --report {_e(str(page.config.get('results_dir', 'results')))}/snakemake_report.html"
            "   # Snakemake's provenance report</pre>"
            f"<p>Configuration of this run:</p><pre>{_e(config)}</pre></section>")


def _robustness(section: RobustnessSection, base: Path, number: int) -> str:
    table = _frame_html(section.summary.set_index("task"), caption="Robustness track", index_name="task")
    return ('<section id="robustness"><h2>Robustness to perturbations</h2>'
            "<p>Mean accuracy over the track's pairs on the clean pair, under random perturbation chains and "
            "under the adversarial chain of each budget (the worst a search found; <i>found_by</i> names which "
            "search found it per pair). DSC: higher is better; TRE_kp (mm): lower is better.</p>"
            f'<div class="wide">{table}</div>{_figure(section.figure, base, number)}</section>')


def _subgroups(sections: Sequence[SubgroupSection]) -> str:
    parts = ['<section id="subgroups"><h2>Subgroups</h2>'
             "<p>Mean DSC and HD95 of each method per subgroup of the subjects (by the covariates the dataset "
             "records), and each subgroup's gap to all other pairs with a bootstrap 95 % interval "
             "(<i>_low</i>, <i>_high</i>): an interval that excludes 0 is a gap the spread of the pairs does not "
             "explain.</p>"]
    for section in sections:
        table = _frame_html(section.table.set_index("method"), caption=f"Subgroups: {section.task}",
                            index_name="method")
        parts.append(f'<div class="wide">{table}</div>')
    return "".join(parts) + "</section>"


def _generative(summary: pd.DataFrame) -> str:
    table = _frame_html(summary, caption="Conditional generative model", index_name="analysis / measure")
    return ('<section id="generative"><h2>Generative model of the heart</h2>'
            "<p>The conditional model (CHeart-style) and its ablation without conditions on phantom subjects they "
            "never saw: sequence completion from the first frame (Dice and HD95 in mm, mean over the later frames; "
            "<i>copy_first</i> repeats the first frame; the conditioned model's Dice gain over its ablation, "
            "paired per subject, with its signed-rank p), generated cohorts (Wasserstein distance of each clinical "
            "index to the phantom's, mean over the sex and age cells; the change per decade of age against the "
            "phantom's), and ageing (each subject's predicted change 20 years on against the phantom's).</p>"
            f'<div class="wide">{table}</div></section>')


CLAIM_COLUMNS = ["paper", "claim", "task", "metric", "claimed", "claimed_value", "other", "other_value", "n",
                 "p_value", "verdict", "why"]


def _training(training: TrainingSection, base: Path, number: int) -> str:
    sources = _frame_html(training.sources.set_index("task"), caption="Models of the learning methods",
                          index_name="task")
    curves = ("" if training.figure is None else
              "<p>Every validation of every network the run trained (<code>validate_every</code>, "
              "<code>regbench/training.py</code>); the curves are in "
              "<code>models/&lt;task&gt;/&lt;method&gt;_validation.csv</code>, a shipped model's as it was made.</p>"
              f"{_figure(training.figure, base, number)}")
    return ('<section id="training"><h2>Training</h2><p>A learning method loads the model shipped with regbench '
            "where it was made exactly as this run would train it (same task data, seed and settings; "
            "<code>--config train=scratch</code> trains every one) and trains otherwise; <i>why</i> says which "
            f'(<code>models/&lt;task&gt;/&lt;method&gt;_source.json</code>).</p><div class="wide">{sources}</div>'
            f"{curves}</section>")


def _claims(table: pd.DataFrame) -> str:
    shown = table[CLAIM_COLUMNS].astype(object).where(table[CLAIM_COLUMNS].notna(), "")
    rendered = _frame_html(shown.set_index("paper"), caption="Claims of the seed papers", index_name="paper")
    return ('<section id="claims"><h2>Claims</h2>'
            "<p>Each claim of the seed papers that the run can test, on the run's own results: a comparison "
            "pairs the samples the ranking compares (each test pair's Dice per label, or TRE per keypoint) and "
            "holds when the claimed method is better on average and a signed-rank test separates the two "
            "(p &lt; 0.05); <i>as accurate as</i> allows 0.01 Dice or 0.5 mm; with fewer than six paired "
            "samples, or without the methods, task or benchmark a claim needs, it is not testable here "
            "(<i>why</i> says which). Also in <code>claims.md</code> and <code>claims.csv</code>."
            f'</p><div class="wide">{rendered}</div></section>')


def render_report(page: ReportPage, base: Path) -> str:
    """The page as HTML; ``base`` is the folder the page will be written to (SVG links are relative to it)."""
    links = [("overview", "Overview"), ("ranking", "Ranking"),
             *((_slug(t.task), t.task) for t in page.tasks),
             *([("robustness", "Robustness")] if page.robustness else []),
             *([("subgroups", "Subgroups")] if page.subgroups else []),
             *([("generative", "Generative model")] if page.generative is not None else []),
             *([("training", "Training")] if page.training is not None else []),
             *([("claims", "Claims")] if page.claims is not None else []),
             ("methods", "Methods"), ("environment", "Environment"), ("reproduce", "Reproduce")]
    nav = "".join(f'<a href="#{anchor}">{_e(text)}</a>' for anchor, text in links)
    sections = [_overview(page),
                f'<section id="ranking"><h2>Overall ranking</h2><div class="wide">{page.overall_table}</div>'
                f"{_figure(page.overall_figure, base, 1)}</section>"]
    number = 2
    for task in page.tasks:
        sections.append(_task_section(task, base, number))
        number += len(task.figures)
    if page.robustness:
        sections.append(_robustness(page.robustness, base, number))
        number += 1
    if page.subgroups:
        sections.append(_subgroups(page.subgroups))
    if page.generative is not None:
        sections.append(_generative(page.generative))
    if page.training is not None:
        sections.append(_training(page.training, base, number))
        number += page.training.figure is not None
    if page.claims is not None:
        sections.append(_claims(page.claims))
    sections += [_methods(page), _environment(page), _reproduce(page)]
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>regbench report</title><style>{STYLE}</style></head><body>"
            f"<header><h1>regbench report</h1><p class=\"note\">Generated {_e(generated)} by regbench.</p></header>"
            f"<nav>{nav}</nav>{''.join(sections)}</body></html>\n")
