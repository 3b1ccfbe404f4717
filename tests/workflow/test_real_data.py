"""The workflow on real Learn2Reg downloads: folders outside the project in each published dialect (OASIS-style
with hidden test labels, ThoraxCBCT paired with keypoints01Tr/keypoints02Tr, LUMIR 2025 with ``validation``),
given by path or through a task YAML, run end to end with ``split=val`` and ``split=test``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from regbench.dataset import read_dataset
from tests.learn2reg_dialects import write_classic, write_lumir, write_thoraxcbct
from tests.workflow.test_workflow import _snakemake, _workdir

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> dict[str, Path]:
    """The user's downloads, outside any workflow folder. ThoraxCBCT's validation keypoints are unpublished; here
    the user has them (copied from the organisers' folder), so TRE can be scored on the val pairs."""
    root = tmp_path_factory.mktemp("downloads")
    thorax = write_thoraxcbct(root / "ThoraxCBCT", hidden_root=root / "organisers")
    for folder in ("keypoints01Tr", "keypoints02Tr"):
        shutil.copytree(root / "organisers" / folder, thorax / folder, dirs_exist_ok=True)
    yaml_dir = root / "my_tasks"
    yaml_dir.mkdir()
    (yaml_dir / "thorax.yaml").write_text("source: ../ThoraxCBCT\nanatomy: lung\n")
    found = {"oasis": write_classic(root / "OASIS"), "thorax_yaml": yaml_dir / "thorax.yaml",
             "lumir": write_lumir(root / "LUMIR")}
    return {**found, "snapshot": _snapshot(root)}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _run(workdir: Path, *args: str) -> None:
    result = _snakemake(workdir, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _config(tasks: list[Path], split: str) -> str:
    """Three methods, voxelmorph among them: a learning method trains on the download's training pairs."""
    return (f"tasks: [{', '.join(str(t) for t in tasks)}]\nmethods: [identity, affine, voxelmorph]\nscale: smoke\n"
            f"split: {split}\n")


def _metrics(workdir: Path, task: str, method: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "metrics" / task / method / "metrics.csv")


@pytest.fixture(scope="module")
def val_run(downloads, tmp_path_factory) -> Path:
    workdir = _workdir(tmp_path_factory.mktemp("val"), _config(
        [downloads["oasis"], downloads["thorax_yaml"], downloads["lumir"]], "val"))
    _run(workdir)
    return workdir


@pytest.fixture(scope="module")
def test_run(downloads, tmp_path_factory) -> Path:
    workdir = _workdir(tmp_path_factory.mktemp("test"), _config([downloads["oasis"]], "test"))
    _run(workdir)
    return workdir


def test_val_run_names_every_output_by_the_json_and_ranks_every_method(val_run):
    for task in ("OASIS", "ThoraxCBCT", "LUMIR"):
        board = pd.read_csv(val_run / "results" / "leaderboard" / f"{task}.csv", index_col="method")
        assert set(board.index) == {"identity", "affine", "voxelmorph"} and (board["failed"] == 0).all()
    overall = pd.read_csv(val_run / "results" / "leaderboard" / "overall.csv", index_col="method")
    assert {"OASIS", "ThoraxCBCT", "LUMIR"} <= set(overall.columns)
    assert (val_run / "results" / "report.html").is_file()


def test_val_run_scores_dice_on_oasis_and_tre_on_thoraxcbct_keypoints(val_run):
    oasis = pd.read_csv(val_run / "results" / "leaderboard" / "OASIS.csv", index_col="method")
    assert oasis.loc["affine", "DSC"] > oasis.loc["identity", "DSC"]
    thorax = pd.read_csv(val_run / "results" / "leaderboard" / "ThoraxCBCT.csv", index_col="method")
    assert thorax.loc["affine", "TRE_kp"] < thorax.loc["identity", "TRE_kp"]
    # every val pair, the 0001 <- 0000 and the 0002 <- 0000 ones, scored from keypoints0NTr/
    tre = _metrics(val_run, "ThoraxCBCT", "affine").query("metric == 'TRE_kp'")
    assert set(tre["pair"]) == {p.key for p in read_dataset(val_run / "results" / "data" / "ThoraxCBCT")
                                .pair_ids("val")}


def test_val_run_scores_lumir_without_labels(val_run):
    board = pd.read_csv(val_run / "results" / "leaderboard" / "LUMIR.csv", index_col="method")
    assert {"LogJacDetStd", "NDV"} <= set(board.columns) and "DSC" not in board.columns
    pairs = {p.key for p in read_dataset(val_run / "results" / "data" / "LUMIR").pair_ids("val")}
    assert set(_metrics(val_run, "LUMIR", "affine").query("metric == 'NDV'")["pair"]) == pairs


def test_learning_methods_train_on_the_downloads_own_training_pairs(val_run):
    log = (val_run / "results" / "logs" / "train" / "ThoraxCBCT" / "voxelmorph.log").read_text()
    assert "training voxelmorph on ThoraxCBCT: 4 pairs" in log  # training_paired_images, none of the val cases


def test_test_run_on_hidden_labels_writes_submission_fields_and_says_what_it_could_not_score(test_run, downloads):
    task = read_dataset(downloads["oasis"])
    for method in ("identity", "affine", "voxelmorph"):
        folder = test_run / "results" / "registrations" / "OASIS" / method
        assert {p.name for p in folder.glob("disp_*.nii.gz")} == \
            {f"{p.disp_stem}.nii.gz" for p in task.pair_ids("test")}
        metrics = _metrics(test_run, "OASIS", method)
        assert {"LogJacDetStd", "NDV", "FoldingFraction", "Runtime_s"} <= set(metrics["metric"])
        assert "DSC" not in set(metrics["metric"])
        evaluation = json.loads((test_run / "results" / "metrics" / "OASIS" / method / "evaluation.json").read_text())
        assert {"DSC", "HD95"} <= set(evaluation["not_scored"])
    board = (test_run / "results" / "leaderboard" / "OASIS.md").read_text()
    assert "Not scored" in board and "DSC" in board and "labelsTs" in board
    assert "DSC" in (test_run / "results" / "report.html").read_text().split("Not scored", 1)[1][:2000]


def test_a_split_the_download_does_not_have_stops_the_plan(downloads, tmp_path):
    result = _snakemake(_workdir(tmp_path, _config([downloads["lumir"]], "test")), "-n")
    assert result.returncode != 0
    assert "task LUMIR" in result.stderr + result.stdout and "lists no test pairs" in result.stderr + result.stdout


def test_the_downloads_are_left_as_they_were(downloads, val_run, test_run):
    assert _snapshot(downloads["oasis"].parent) == downloads["snapshot"]
