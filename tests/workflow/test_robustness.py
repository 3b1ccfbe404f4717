"""The robustness track in the workflow: a per-pair table per task and method, and the summary table, for the
methods and tasks config robustness lists that the run has; an unknown method stops the plan."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).parents[2]
# budgets at scale smoke: robustness.scales' entry replaces the common ones (the table has budget 1.0 alone)
TRACK = ("robustness:\n  methods: [affine, voxelmorph]\n  budgets: [0.5, 1.0]\n  pairs: 1\n  draws: 2\n  evaluations: 4\n"
         "  scales:\n    smoke: {budgets: [1.0]}\n    default: {budgets: [0.25]}\n")
RUN = ("--config", "scale=smoke", "tasks=[cardiac_mr]", "methods=[identity,affine,voxelmorph]")


def _snakemake(workdir: Path, track: str, *args: str) -> subprocess.CompletedProcess:
    (workdir / "config").mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "config.yaml", workdir / "config")
    (workdir / "track.yaml").write_text(track)
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    return subprocess.run([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
                           "--configfile", str(workdir / "config" / "config.yaml"), str(workdir / "track.yaml"), *RUN, *args],
                          capture_output=True, text=True)


def test_the_track_writes_per_pair_tables_and_the_summary(tmp_path):
    result = _snakemake(tmp_path, TRACK)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results" / "leaderboard" / "robustness.csv")
    assert list(summary.columns[:7]) == ["task", "method", "budget", "metric", "clean", "random", "adversarial"]
    assert set(summary["method"]) == {"affine", "voxelmorph"} and (summary["metric"] == "DSC").all()
    assert (summary["failed"] == 0).all() and summary["found_by"].str.match(r"(random|cma-es|gradient) 1").all()
    for method in ("affine", "voxelmorph"):
        table = pd.read_csv(tmp_path / "results" / "robustness" / "cardiac_mr" / f"{method}.csv")
        assert list(table["kind"]) == ["clean", "random", "adversarial"] and list(table["budget"]) == [0, 1, 1]
        errors = table.set_index("kind")["error"]
        assert errors["adversarial"] >= errors["random"]  # the worst chain found is at least the random mean
    assert not (tmp_path / "results" / "robustness" / "cardiac_mr" / "identity.csv").exists()
    page = (tmp_path / "results" / "report.html").read_text()
    assert '<section id="robustness">' in page and "Robustness track" in page
    assert (tmp_path / "results" / "plots" / "overall" / "robustness.png").is_file()
    # config.yaml's instance_optimisation gives voxelmorph a second row, outside the track
    board = pd.read_csv(tmp_path / "results" / "leaderboard" / "cardiac_mr.csv", index_col="method")
    assert {"voxelmorph", "voxelmorph+io"} <= set(board.index) and (board["failed"] == 0).all()
    assert not (tmp_path / "results" / "models" / "cardiac_mr" / "voxelmorph+io.pt").exists()


def test_the_track_keeps_to_the_methods_and_tasks_the_run_has(tmp_path):
    track = TRACK.replace("affine, voxelmorph", "affine, elastix") + "  tasks: [cardiac_mr, brain_mr]\n"
    result = _snakemake(tmp_path, track, "-n")  # the run: cardiac_mr with identity, affine and voxelmorph
    assert result.returncode == 0, result.stdout[-2000:]
    planned = re.findall(r"output: \S*robustness/(\w+)/(\w+)\.csv", result.stdout)
    assert planned == [("cardiac_mr", "affine")]


def test_an_unknown_track_method_stops_the_plan(tmp_path):
    result = _snakemake(tmp_path, TRACK.replace("affine, voxelmorph", "affine, elastics"), "-n")
    assert result.returncode != 0 and "robustness: unknown methods elastics" in result.stdout + result.stderr
