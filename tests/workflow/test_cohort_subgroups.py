"""The subgroup analysis in the workflow: a run with cardiac_cohort trains the generative model, makes the
cohort with it, and writes the subgroup table of every method and the model's evaluation, both in the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).parents[2]
METHODS = ["identity", "affine", "voxelmorph"]


def test_a_cohort_run_writes_subgroups_and_the_models_evaluation(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config")
    (tmp_path / "off.yaml").write_text("robustness:\n  methods: []\ninstance_optimisation:\n  methods: []\n")
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    result = subprocess.run([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                             "--configfile", str(tmp_path / "config" / "config.yaml"), str(tmp_path / "off.yaml"),
                             "--config", "scale=smoke", "tasks=[cardiac_cohort]", f"methods=[{','.join(METHODS)}]"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = tmp_path / "results"
    described = json.loads((results / "data" / "cardiac_cohort" / "cardiac_cohort_dataset.json").read_text())
    test_subjects = [entry["fixed"].split("_")[-2] for entry in described["registration_test"]]
    ages = sorted(described["covariates"][s]["age"] // 20 for s in test_subjects)
    assert ages == [1, 1, 2, 2, 3, 3]  # smoke: one test pair per sex and age group
    table = pd.read_csv(results / "leaderboard" / "cardiac_cohort_subgroups.csv")
    assert set(table["method"]) == set(METHODS)
    assert set(table["covariate"]) == {"age", "sex", "systolic_bp"}
    assert (table[table.covariate == "sex"].groupby("method")["n"].sum() == 6).all()
    assert (results / "generative" / "cardiac" / "cheart.pt").is_file()
    evaluation = pd.read_csv(results / "generative" / "cardiac" / "evaluation.csv")
    assert set(evaluation["analysis"]) == {"completion", "generation", "ageing"}
    page = (results / "report.html").read_text()
    assert '<section id="subgroups">' in page and "Subgroups: cardiac_cohort" in page
    assert '<section id="generative">' in page and "completion / dice" in page
