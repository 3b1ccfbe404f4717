"""metrics.uncertainty: coverage, calibration error and rank correlation on fields with known error
statistics; Dice spread over samples; and the path from a method's field through files into the evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from regbench import io
from regbench.displacement import Displacement
from regbench.metrics.evaluate import evaluate_folder
from regbench.metrics.uncertainty import (CALIBRATION_LEVELS, calibration, dice_spread, gaussian_coverage,
                                          std_of)

SHAPE = (40, 30, 20)


def fields(rng: np.random.Generator, std_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mean field, a stated std and a truth whose error is Gaussian with std_scale times the stated std."""
    disp = rng.normal(0, 2, (*SHAPE, 3))
    std = rng.uniform(0.2, 2.0, (*SHAPE, 3))
    truth = disp + std_scale * std * rng.standard_normal((*SHAPE, 3))
    return disp, std, truth


def test_gaussian_coverages():
    # erf(k / sqrt 2): the 68-95-99.7 rule.
    assert [round(gaussian_coverage(k), 3) for k in (1, 2, 3)] == [0.683, 0.954, 0.997]


def test_a_calibrated_std_covers_as_a_gaussian():
    disp, std, truth = fields(np.random.default_rng(0), 1.0)
    scores = calibration(disp, std, truth, (1.0, 1.0, 1.0))
    # 72000 standardised errors: coverage within 0.01 of the Gaussian values, calibration error about 0.002.
    for k, value in scores.coverage.items():
        assert value == pytest.approx(gaussian_coverage(k), abs=0.01)
    assert scores.calibration_error < 0.01


@pytest.mark.parametrize("std_scale", [0.5, 2.0], ids=["std-too-large", "std-too-small"])
def test_a_miscalibrated_std_shows_in_coverage_and_calibration_error(std_scale):
    # The true error has std_scale times the stated std: |z| <= k with probability erf(k / (std_scale sqrt 2)).
    disp, std, truth = fields(np.random.default_rng(1), std_scale)
    scores = calibration(disp, std, truth, (1.0, 1.0, 1.0))
    for k, value in scores.coverage.items():
        assert value == pytest.approx(gaussian_coverage(k / std_scale), abs=0.01)
    expected = np.mean([abs(gaussian_coverage(stats.norm.ppf((1 + p) / 2) / std_scale) - p)
                        for p in CALIBRATION_LEVELS])
    assert scores.calibration_error == pytest.approx(expected, abs=0.01)
    assert scores.calibration_error > 0.15  # measured 0.22 (under-confident) and 0.21 (over-confident)


def test_rank_correlation_of_std_and_error():
    rng = np.random.default_rng(2)
    disp, std, truth = fields(rng, 1.0)
    # A std proportional to the actual error vector ranks it perfectly; an unrelated one not at all.
    exact = np.abs(disp - truth) * 0.5
    assert calibration(disp, exact, truth, (1.0, 1.0, 1.0)).spearman == pytest.approx(1.0)
    unrelated = rng.uniform(0.2, 2.0, std.shape)
    assert abs(calibration(disp, unrelated, truth, (1.0, 1.0, 1.0)).spearman) < 0.03


def test_zero_std_zero_error_counts_as_covered_and_regions_restrict():
    disp = np.zeros((*SHAPE, 3))
    truth = disp.copy()
    truth[:20, ..., 0] = 5.0  # error 5 voxels in the first half, nothing elsewhere
    std = np.zeros_like(disp)
    region = np.zeros(SHAPE, dtype=bool)
    region[20:] = True
    scores = calibration(disp, std, truth, (1.0, 1.0, 1.0), region)
    assert scores.coverage == {1: 1.0, 2: 1.0, 3: 1.0}
    assert np.isnan(scores.spearman)  # a constant std ranks nothing
    everywhere = calibration(disp, std, truth, (1.0, 1.0, 1.0))
    assert everywhere.coverage[3] == pytest.approx(1 - 1 / 6)  # one component of half the voxels missed
    with pytest.raises(ValueError, match="one shape"):
        calibration(disp, std[..., :2], truth, (1.0, 1.0, 1.0))


def test_std_comes_from_samples_when_not_stated():
    samples = np.random.default_rng(3).normal(size=(5, *SHAPE, 3))
    np.testing.assert_array_equal(std_of(None, samples), samples.std(0))
    assert std_of(np.ones(3), samples)[0] == 1.0 and std_of(None, None) is None


def test_dice_spread_over_samples():
    fixed = np.zeros((20, 20), dtype=np.int16)
    fixed[5:15, 5:15] = 1
    fixed[0:4, 0:4] = 2
    moving = fixed.copy()
    still = np.zeros((20, 20, 2))
    shifted = still.copy()
    shifted[..., 0] = 2.0  # label 1 moves by 2 rows: overlap 8 x 10 of 10 x 10 -> Dice 0.8
    spread = dice_spread(fixed, moving, np.stack([still, shifted]), [1, 2, 3])
    # Label 1: Dice 1.0 and 0.8 -> population std 0.1. Label 2 (a corner block) shifted by 2 leaves the grid
    # partly: Dice 1.0 and 2 * 8 / (16 + 8) = 0.667 -> std 0.167. Label 3 is absent: NaN.
    np.testing.assert_allclose(spread[:2], [0.1, 1 / 6], atol=1e-12)
    assert np.isnan(spread[2])
    np.testing.assert_array_equal(dice_spread(fixed, moving, np.stack([still, still]), [1, 2]), [0.0, 0.0])


@pytest.mark.parametrize("ext", [".nii.gz", ".npz"])
def test_std_and_samples_survive_write_and_read(tmp_path, ext):
    rng = np.random.default_rng(4)
    data = rng.normal(size=(6, 5, 4, 3)).astype(np.float32)
    disp = Displacement(data, std=np.abs(data), samples=np.stack([data, 2 * data]))
    path = tmp_path / f"disp_0001_0000_0002_0000{ext}"
    io.write_disp(path, disp)
    back = io.read_disp(path, uncertainty=True)
    np.testing.assert_array_equal(back.std, disp.std)
    np.testing.assert_array_equal(back.samples, disp.samples)
    assert io.read_disp(path).std is None  # the default read is the official one
    # A later field without uncertainty removes the stale companion file.
    io.write_disp(path, Displacement(data))
    assert io.read_disp(path, uncertainty=True).std is None
    assert not io.uncertainty_path(path).exists()


def test_evaluation_reports_uncertainty_only_where_a_field_has_it(make_dataset, tmp_path):
    task = make_dataset(np.random.default_rng(5), groundtruth=True, n_pairs=2)
    first, second = task.pair_ids("val")
    rng = np.random.default_rng(6)
    for pair in (first, second):
        truth = task.load_groundtruth(pair).data
        std = np.full_like(truth, 0.5)
        estimate = truth + 0.5 * rng.standard_normal(truth.shape).astype(np.float32)
        samples = estimate + std * rng.standard_normal((4, *truth.shape)).astype(np.float32)
        io.write_disp(tmp_path / "prob" / f"{pair.disp_stem}.nii.gz",
                      Displacement(estimate, std=std, samples=samples.astype(np.float32)))
        io.write_disp(tmp_path / "plain" / f"{pair.disp_stem}.nii.gz", Displacement(estimate))
    prob = evaluate_folder(task, tmp_path / "prob")
    case = prob.to_json()["cases"][first.key]
    # The estimate's error has exactly the stated std 0.5: calibrated coverage.
    assert case["Coverage1sd"]["mean"] == pytest.approx(0.683, abs=0.03)
    assert case["CalibrationError"]["mean"] < 0.05
    assert len(case["DSC_SampleStd"]["detailed"]) == len(case["DSC"]["detailed"])
    assert np.nanmax(case["DSC_SampleStd"]["detailed"]) > 0
    rows = prob.rows()
    assert set(rows.loc[rows["metric"] == "DSC_SampleStd", "label"]) == set(rows.loc[rows["metric"] == "DSC", "label"])
    plain = evaluate_folder(task, tmp_path / "plain").metric_names
    assert not {"Coverage1sd", "CalibrationError", "StdErrorSpearman", "DSC_SampleStd"} & set(plain)
    assert not prob.unexpected_files  # the companion files are not taken for stray submissions
