"""Scoring real Learn2Reg releases: LUMIR's json and configs (NDV, landmark maps, Dice with background),
ThoraxCBCT's keypoints01/keypoints02 folders, and test splits that ship no labels or keypoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regbench import io
from regbench.cli import main
from regbench.dataset import read_dataset
from regbench.displacement import Displacement
from regbench.image import Image, LabelMap, affine_from_spacing
from regbench.metrics.dice import dice_per_label
from regbench.metrics.eval_config import read_eval_config
from regbench.metrics.evaluate import evaluate_folder
from regbench.metrics.ndv import ndv_percent
from regbench.metrics.warp import warp_labels_nearest
from regbench.pair import CaseId, PairId

DATA = Path(__file__).parents[1] / "data"
SHAPE = (16, 18, 14)
PAIRS = [(3455, 3454), (3456, 3455)]
SHIFT = (2, -1, 3)  # moving landmarks sit this many voxels from the fixed ones


def lumir_image(case: int) -> str:
    return f"./imagesVal/LUMIRMRI_{case:04d}_0000.nii.gz"


def write_lumir(root: Path, rng: np.random.Generator, *, labels: bool = False, landmarks: bool = False) -> None:
    """A LUMIR 2025-style dataset: the json has ``validation`` (no ``registration_val``) and ``labels: {}``;
    images with a zero background around the head; label maps and landmark maps only where asked."""
    cases = sorted({c for pair in PAIRS for c in pair})
    for case in cases:
        image = np.zeros(SHAPE, dtype=np.float32)
        image[2:-2, 3:-3, 2:-2] = rng.uniform(0.5, 1.0, size=(SHAPE[0] - 4, SHAPE[1] - 6, SHAPE[2] - 4))
        io.write_image(root / lumir_image(case), Image(image, np.eye(4)))
        if labels:
            seg = np.zeros(SHAPE, dtype=np.int16)
            seg[3:-3, 4:-4, 3:-3] = rng.integers(1, 3, size=(SHAPE[0] - 6, SHAPE[1] - 8, SHAPE[2] - 6))
            io.write_image(root / lumir_image(case).replace("images", "labels"), LabelMap(seg, np.eye(4)))
    for case in cases if landmarks else []:  # each moving case's landmarks SHIFT from its fixed case's
        shift = [(PAIRS[-1][0] - case) * d for d in SHIFT]
        marks = np.zeros(SHAPE, dtype=np.int16)
        for label, start in ((1, (4, 5, 4)), (2, (9, 9, 6)), (5, (6, 12, 5))):
            marks[tuple(slice(s + d, s + d + 2) for s, d in zip(start, shift))] = label
        io.write_image(root / lumir_image(case).replace("images", "landmarks"), LabelMap(marks, np.eye(4)))
    validation = [{"fixed": lumir_image(f), "moving": lumir_image(m)} for f, m in PAIRS]
    description = {"name": "LUMIR", "pairings": "unpaired", "provided_data": {"0": ["image"]},
                   "modality": {"0": "T1w Brain MRI"}, "labels": {}, "tensorImageSize": {"0": "3D"},
                   "tensorImageShape": {"0": list(SHAPE)}, "numTraining": 0, "training": [],
                   "numValidation": len(validation), "validation": validation}
    (root / "LUMIR_dataset.json").write_text(json.dumps(description))


def lumir_config(path: Path, methods: list[dict]) -> Path:
    """A config in the layout of LUMIR's own (``name``, not ``task_name``)."""
    pairs = [{"fixed": lumir_image(f), "moving": lumir_image(m)} for f, m in PAIRS]
    path.write_text(json.dumps({"name": "LUMIR", "evaluation_methods": methods, "expected_shape": [*SHAPE, 3],
                                "eval_pairs": pairs, "eval_config_version": 0.0, "masked_evaluation": False}))
    return path


def folding_field(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(scale=0.5, size=(*SHAPE, 3)).astype(np.float32)


def write_fields(folder: Path, fields: list[np.ndarray]) -> None:
    """LUMIR's examples write ``disp_{fixed}_{moving}.nii.gz``, the short name of same-modality pairs."""
    for (fixed, moving), field in zip(PAIRS, fields):
        io.write_disp(folder / f"disp_{fixed}_{moving}.nii.gz", Displacement(field))


def foreground(root: Path, case: int) -> np.ndarray:
    return io.read_image(root / lumir_image(case)).data > 0


def test_lumir_dataset_scores_ndv_without_labels(tmp_path, rng, capsys):
    write_lumir(tmp_path / "LUMIR", rng)
    fields = [folding_field(rng), np.zeros((*SHAPE, 3), dtype=np.float32)]
    write_fields(tmp_path / "disp", fields)
    assert main(["evaluate", str(tmp_path / "LUMIR"), str(tmp_path / "disp"), "--out", str(tmp_path / "out")]) == 0
    assert "regbench:" not in capsys.readouterr().err  # nothing failed, nothing left unscored
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert list(result["aggregates"]) == ["LogJacDetStd", "FoldingFraction", "NDV"]
    folded = result["cases"]["3455_0000<--3454_0000"]["NDV"]["mean"]
    # NIfTI's memory order sums the schemes in another order: equal to rounding
    assert folded == pytest.approx(ndv_percent(fields[0], foreground(tmp_path / "LUMIR", 3455)), rel=1e-13)
    assert 1.0 < folded < 50.0
    assert result["cases"]["3456_0000<--3455_0000"]["NDV"]["mean"] == 0.0
    assert result["aggregates"]["NDV"]["30"] == pytest.approx(np.quantile([folded, 0.0], 0.7))
    assert result["not_scored"] == {} and result["not_scored_cases"] == {}


def test_lumir_segmentation_config_without_labels_scores_ndv_and_names_the_rest(tmp_path, rng, capsys):
    write_lumir(tmp_path / "LUMIR", rng)
    write_fields(tmp_path / "disp", [folding_field(rng), folding_field(rng)])
    config = lumir_config(tmp_path / "seg.json", [{"name": "Non-diffeomorphic Volumes", "metric": "ndv"},
                                                  {"name": "DSC", "metric": "dice", "labels": [0, 1, 2]},
                                                  {"name": "HD95", "metric": "hd95", "labels": [0, 1, 2]}])
    args = ["evaluate", str(tmp_path / "LUMIR"), str(tmp_path / "disp"), "--config", str(config)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    labels = tmp_path / "LUMIR" / "labelsVal" / "LUMIRMRI_3455_0000.nii.gz"
    reason = f"{labels}: file not found (and for all 2 pairs)"
    assert capsys.readouterr().err.splitlines() == [
        f"regbench: not scored {name}: {reason}" for name in ("DSC", "HD95", "HD95_mm")]
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert result["not_scored"] == dict.fromkeys(["DSC", "HD95", "HD95_mm"], reason)
    assert list(result["aggregates"]) == ["Non-diffeomorphic Volumes", "NDV"]
    for case in result["cases"].values():
        assert case["Non-diffeomorphic Volumes"] == case["NDV"] and case["NDV"]["mean"] > 1.0
    rows = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert set(rows["metric"]) == {"Non-diffeomorphic Volumes", "NDV", "Failed"}


def test_lumir_segmentation_config_scores_the_background_label(tmp_path, rng):
    write_lumir(tmp_path / "LUMIR", rng, labels=True)
    fields = [folding_field(rng), folding_field(rng)]
    write_fields(tmp_path / "disp", fields)
    config = read_eval_config(lumir_config(tmp_path / "seg.json", [
        {"name": "DSC", "metric": "dice", "labels": [0, 1, 2]},
        {"name": "HD95", "metric": "hd95", "labels": [0, 1, 2]}]))
    evaluation = evaluate_folder(read_dataset(tmp_path / "LUMIR"), tmp_path / "disp", config=config)
    assert not evaluation.failures and evaluation.not_scored == {}
    root = tmp_path / "LUMIR"
    for (fixed, moving), field, scores in zip(PAIRS, fields, evaluation.scores):
        fixed_seg, moving_seg = (io.read_labels(root / lumir_image(c).replace("images", "labels")).data
                                 for c in (fixed, moving))
        expected = dice_per_label(fixed_seg, moving_seg, warp_labels_nearest(moving_seg, field), [0, 1, 2])
        assert scores.detailed["DSC"] == expected.tolist() and 0.5 < expected[0] < 1.0
        assert len(scores.detailed["HD95"]) == 3 and np.isfinite(scores.detailed["HD95"]).all()


def test_lumir_landmark_config_scores_tre_from_label_maps(tmp_path, rng):
    write_lumir(tmp_path / "LUMIR", rng, landmarks=True)
    write_fields(tmp_path / "zero", [np.zeros((*SHAPE, 3), dtype=np.float32)] * 2)
    back = np.broadcast_to(np.array(SHIFT, dtype=np.float32), (*SHAPE, 3)).copy()
    write_fields(tmp_path / "back", [back, back])
    config = lumir_config(tmp_path / "lm.json", [{"name": "Non-diffeomorphic Volumes", "metric": "ndv"},
                                                 {"name": "TRE_lm", "metric": "tre", "dest": "landmarks"}])
    for folder, expected in (("zero", np.sqrt(4 + 1 + 9)), ("back", 0.0)):
        out = tmp_path / f"out_{folder}"
        assert main(["evaluate", str(tmp_path / "LUMIR"), str(tmp_path / folder), "--config", str(config),
                     "--out", str(out)]) == 0
        result = json.loads((out / "evaluation.json").read_text())
        for case in result["cases"].values():
            np.testing.assert_allclose(case["TRE_lm"]["detailed"], [expected] * 3, rtol=1e-15)
            assert case["Non-diffeomorphic Volumes"]["mean"] == 0.0  # translations do not fold
        rows = pd.read_csv(out / "metrics.csv")
        assert rows[rows["metric"] == "TRE_lm"]["label"].tolist() == [1, 2, 5] * 2  # the landmark labels
        assert result["aggregates"]["TRE_lm"]["mean"] == pytest.approx(expected, rel=1e-15)


def test_lumir_lost_landmark_makes_the_case_nan_as_in_lumir(tmp_path, rng):
    write_lumir(tmp_path / "LUMIR", rng, landmarks=True)
    path = tmp_path / "LUMIR" / "landmarksVal" / "LUMIRMRI_3454_0000.nii.gz"  # moving image of the first pair
    marks = io.read_labels(path).data
    io.write_image(path, LabelMap(np.where(marks == 2, 0, marks).astype(np.int16), np.eye(4)))
    write_fields(tmp_path / "disp", [np.zeros((*SHAPE, 3), dtype=np.float32)] * 2)
    config = read_eval_config(lumir_config(tmp_path / "lm.json", [{"name": "TRE_lm", "metric": "tre",
                                                                    "dest": "landmarks"}]))
    cases = evaluate_folder(read_dataset(tmp_path / "LUMIR"), tmp_path / "disp", config=config).to_json()["cases"]
    first = cases["3455_0000<--3454_0000"]["TRE_lm"]
    assert np.isnan(first["detailed"][1]) and np.isnan(first["mean"])
    assert cases["3456_0000<--3455_0000"]["TRE_lm"]["mean"] == pytest.approx(np.sqrt(14), rel=1e-15)


def write_thorax(root: Path, *, keypoints_of: tuple[int, ...]) -> None:
    """The ThoraxCBCT fixture json with images (1.5 x 1 x 2 mm) and, for the listed validation subjects,
    keypoints in keypoints01Tr/ and keypoints02Tr/. The FBCT keypoints of time point N are those of the CBCT
    shifted by (N, 0, 0) voxels, so a zero field has TRE 1.5 N mm: reading the wrong folder shows."""
    root.mkdir()
    shutil.copy(DATA / "ThoraxCBCT_dataset.json", root)
    description = json.loads((DATA / "ThoraxCBCT_dataset.json").read_text())
    shape = tuple(description["tensorImageShape"]["0"])
    affine = affine_from_spacing((1.5, 1.0, 2.0))
    for entry in description["training"]:
        io.write_image(root / entry["image"], Image(np.ones(shape, dtype=np.float32), affine))
    cbct_points = np.array([[4.0, 3.0, 5.0], [6.5, 5.0, 4.0], [8.0, 4.5, 6.0]])
    for subject in keypoints_of:
        for timepoint in (1, 2):
            folder = root / f"keypoints0{timepoint}Tr"
            io.write_keypoints(folder / f"ThoraxCBCT_{subject:04d}_{timepoint:04d}.csv", cbct_points)
            io.write_keypoints(folder / f"ThoraxCBCT_{subject:04d}_0000.csv", cbct_points + [timepoint, 0, 0])


def thorax_fields(task, folder: Path) -> None:
    for pair in task.pair_ids("val"):
        io.write_disp(folder / f"{pair.disp_stem}.nii.gz", Displacement.zeros(task.shape))


def test_thorax_cbct_tre_reads_keypoints01_and_keypoints02(tmp_path):
    write_thorax(tmp_path / "ThoraxCBCT", keypoints_of=(2, 3))
    task = read_dataset(tmp_path / "ThoraxCBCT")
    thorax_fields(task, tmp_path / "disp")
    evaluation = evaluate_folder(task, tmp_path / "disp")
    assert not evaluation.failures and evaluation.not_scored == {} and evaluation.not_scored_cases == {}
    cases = evaluation.to_json()["cases"]
    for subject in (2, 3):
        for timepoint in (1, 2):
            tre = cases[f"{subject:04d}_{timepoint:04d}<--{subject:04d}_0000"]["TRE_kp"]
            np.testing.assert_allclose(tre["detailed"], [1.5 * timepoint] * 3, rtol=1e-12)


def test_thorax_cbct_validation_without_published_keypoints(tmp_path):
    # As released: the validation keypoints are not published, for subject 3 here; its pairs are named.
    write_thorax(tmp_path / "ThoraxCBCT", keypoints_of=(2,))
    task = read_dataset(tmp_path / "ThoraxCBCT")
    thorax_fields(task, tmp_path / "disp")
    evaluation = evaluate_folder(task, tmp_path / "disp")
    missing = {t: tmp_path / "ThoraxCBCT" / f"keypoints0{t}Tr" / f"ThoraxCBCT_0003_000{t}.csv" for t in (1, 2)}
    assert evaluation.not_scored == {}
    assert evaluation.not_scored_cases == {
        f"0003_000{t}<--0003_0000": {"TRE_kp": f"{missing[t]}: file not found (nor a .nii.gz landmark map)"}
        for t in (1, 2)}
    assert evaluation.aggregates()["TRE_kp"]["mean"] == pytest.approx(2.25, rel=1e-12)  # subject 2: 1.5, 3.0
    shutil.rmtree(tmp_path / "ThoraxCBCT" / "keypoints01Tr")
    shutil.rmtree(tmp_path / "ThoraxCBCT" / "keypoints02Tr")
    evaluation = evaluate_folder(task, tmp_path / "disp")
    assert list(evaluation.not_scored) == ["TRE_kp"] and "TRE_kp" not in evaluation.metric_names
    assert evaluation.metric_names == ["LogJacDetStd", "FoldingFraction", "NDV"]


def test_hidden_test_labels_leave_the_label_free_metrics(make_dataset, tmp_path, capsys):
    task = make_dataset(np.random.default_rng(11), n_pairs=3)
    pairs = task.pair_ids("val")
    for pair in pairs[:2]:  # the third pair has no field: it fails
        io.write_disp(tmp_path / "disp" / f"{pair.disp_stem}.nii.gz", Displacement.zeros(task.shape))
    (task.root / "labelsTr" / "Toy_0001_0001.nii.gz").unlink()  # the moving labels of the first pair only
    evaluation = evaluate_folder(task, tmp_path / "disp")
    reason = f"{task.root / 'labelsTr' / 'Toy_0001_0001.nii.gz'}: file not found"
    assert evaluation.not_scored == {}
    assert evaluation.not_scored_cases == {pairs[0].key: dict.fromkeys(["DSC", "HD95", "HD95_mm"], reason)}
    first, second, failed = evaluation.scores
    assert "DSC" not in first.detailed and {"LogJacDetStd", "NDV", "FoldingFraction"} <= set(first.detailed)
    assert "DSC" in second.detailed and failed.detailed["DSC"] == [0.0] * 4  # the missing-case substitute
    assert evaluation.aggregates()["DSC"]["mean"] == pytest.approx(np.mean([second.mean("DSC"), 0.0]))

    shutil.rmtree(task.root / "labelsTr")  # a test split: no labels at all
    evaluation = evaluate_folder(task, tmp_path / "disp")
    assert set(evaluation.not_scored) == {"DSC", "HD95", "HD95_mm"}
    assert evaluation.not_scored["DSC"].endswith("file not found (and for all 3 pairs)")
    assert "DSC" not in evaluation.scores[2].detailed  # no substitute for a metric nobody is scored with
    assert evaluation.metric_names == ["LogJacDetStd", "FoldingFraction", "NDV"]
    assert main(["evaluate", str(task.root), str(tmp_path / "disp"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("regbench: failed 0003_0000<--0003_0001: ")
    assert err[1:] == [f"regbench: not scored {m}: {evaluation.not_scored[m]}" for m in ("DSC", "HD95", "HD95_mm")]
    written = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert written["not_scored"] == evaluation.not_scored and list(written)[-2:] == ["not_scored", "not_scored_cases"]


def test_cli_fails_only_when_no_pair_has_a_field(make_dataset, tmp_path, capsys):
    task = make_dataset(np.random.default_rng(12), n_pairs=2)
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(task.root), str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert "empty: holds no field of a val or test pair of Toy" in capsys.readouterr().err
    pair = task.pair_ids("val")[0]
    io.write_disp(tmp_path / "empty" / f"{pair.disp_stem}.nii.gz", Displacement.zeros(task.shape))
    assert main(["evaluate", str(task.root), str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 0


def test_2d_field_stored_with_a_singleton_axis(make_dataset, tmp_path):
    # COMULIS stores 2D fields as (H, W, 1, 2): read as (H, W, 2) and scored like the plain layout.
    task = make_dataset(np.random.default_rng(13), shape=(30, 26), n_labels=3, n_pairs=1)
    pair = PairId(CaseId(1, 0), CaseId(1, 1))
    field = np.random.default_rng(14).normal(scale=0.5, size=(30, 26, 2)).astype(np.float32)
    io.write_disp(tmp_path / "plain" / f"{pair.disp_stem}.nii.gz", Displacement(field))
    (tmp_path / "comulis").mkdir()
    np.savez(tmp_path / "comulis" / f"{pair.disp_stem}.npz", field[:, :, None, :])
    plain, comulis = (evaluate_folder(task, tmp_path / f).scores[0] for f in ("plain", "comulis"))
    assert comulis.error is None and comulis.detailed == plain.detailed
