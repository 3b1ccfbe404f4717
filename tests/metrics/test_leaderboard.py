"""Leaderboard files: the metrics a task's data could not give are listed with their reasons, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from regbench.metrics.leaderboard import not_scored, write_table


def _evaluation(folder: Path, not_scored_split: dict, not_scored_cases: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({"not_scored": not_scored_split,
                                                        "not_scored_cases": not_scored_cases}))
    return folder / "metrics.csv"


def test_not_scored_joins_the_split_and_the_per_pair_reasons_of_every_method(tmp_path):
    hidden = "labelsTs/OASIS_0415_0000.nii.gz: file not found (and for all 2 pairs)"
    paths = {
        "identity": _evaluation(tmp_path / "identity", {"DSC": hidden}, {}),
        "affine": _evaluation(tmp_path / "affine", {"DSC": hidden},
                              {"0002_0001<--0002_0000": {"TRE_kp": "keypoints01Tr/x.csv: file not found"},
                               "0003_0001<--0003_0000": {"TRE_kp": "keypoints01Tr/y.csv: file not found"}}),
    }
    assert not_scored(paths) == {
        "DSC": hidden,
        "TRE_kp": "not on 2 pair(s), e.g. 0002_0001<--0002_0000: keypoints01Tr/x.csv: file not found"}


def test_the_markdown_leaderboard_lists_what_was_not_scored(tmp_path):
    frame = pd.DataFrame({"LogJacDetStd": [0.1]}, index=pd.Index(["affine"], name="method"))
    write_table(frame, tmp_path / "OASIS", title="Leaderboard: OASIS", notes={"DSC": "labelsTs/...: file not found"})
    text = (tmp_path / "OASIS.md").read_text()
    assert text.endswith("Not scored (the data to compute them is absent):\n\n- DSC: labelsTs/...: file not found\n")
    write_table(frame, tmp_path / "brain", title="Leaderboard: brain")
    assert "Not scored" not in (tmp_path / "brain.md").read_text()
