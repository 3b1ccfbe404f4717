"""How well a probabilistic method's uncertainty describes its actual error (a regbench extension).

Only synthetic tasks know the true displacement, so these are reported beside the leaderboard, never ranked.
A method states a per-voxel, per-component standard deviation sigma of its displacement (``Displacement.std``,
or the spread of its ``samples``). With z = (u - u_true) / sigma per voxel and component:

- ``Coverage1sd``/``2sd``/``3sd``: the share of |z| <= 1, 2, 3, to compare with a Gaussian's 0.683, 0.954
  and 0.997 - below means over-confident, above under-confident;
- ``CalibrationError``: the mean absolute gap between observed and nominal coverage of the central intervals
  at the levels p = 0.05, 0.10, ..., 0.95 (|z| <= Phi^-1((1 + p) / 2)), the regression form of the expected
  calibration error (Kuleshov et al., ICML 2018, arXiv:1807.00263);
- ``StdErrorSpearman``: Spearman's rank correlation between the predicted std and the actual error, both as
  vector lengths in mm (moving spacing): does the method know *where* it is wrong?

All over the same region as the displacement error (``displacement_error.evaluation_region``). Where
posterior samples exist, ``DSC_SampleStd`` gives per label the std of Dice over the samples (each warped and
scored as the official evaluation does): how much the segmentation overlap itself is in doubt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import special, stats

from regbench.metrics.dice import dice_per_label
from regbench.metrics.warp import warp_labels_nearest

COVERAGE_SIGMAS = (1, 2, 3)
CALIBRATION_LEVELS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


class Calibration(NamedTuple):
    coverage: dict[int, float]  # k -> share of |z| <= k
    calibration_error: float
    spearman: float


def gaussian_coverage(k: float) -> float:
    """Probability that a standard normal lies within k of 0: erf(k / sqrt 2) (0.683, 0.954, 0.997)."""
    return float(special.erf(k / np.sqrt(2.0)))


def std_of(std: np.ndarray | None, samples: np.ndarray | None) -> np.ndarray | None:
    """The stated per-voxel std: ``std`` if given, else the (population) std of ``samples`` (N, ...)."""
    if std is not None:
        return std
    if samples is not None:
        return samples.std(0)
    return None


def calibration(disp: np.ndarray, std: np.ndarray, truth: np.ndarray, moving_spacing: Sequence[float],
                region: np.ndarray | None = None) -> Calibration:
    """Coverage, calibration error and std-error rank correlation of one field (see the module docstring).

    Args:
        disp, std, truth: (*spatial, ndim) mean displacement, its std and the true displacement, in voxels.
        moving_spacing: mm per voxel of the moving image (for the vector lengths of the rank correlation).
        region: boolean mask on the fixed grid (all voxels if None).

    A zero std counts as covered only where the error is zero too.
    """
    if not disp.shape == std.shape == truth.shape:
        raise ValueError(f"calibration(): field {disp.shape}, std {std.shape} and truth {truth.shape} "
                         "must have one shape")
    if region is None:
        region = np.ones(disp.shape[:-1], dtype=bool)
    error = disp[region].astype(np.float64) - truth[region]
    sigma = std[region].astype(np.float64)
    if error.size == 0:
        return Calibration({k: float("nan") for k in COVERAGE_SIGMAS}, float("nan"), float("nan"))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(error == 0, 0.0, np.abs(error) / sigma).ravel()
    z.sort()

    def covered(k: float) -> float:
        return float(np.searchsorted(z, k, side="right") / z.size)

    coverage = {k: covered(k) for k in COVERAGE_SIGMAS}
    gaps = [abs(covered(stats.norm.ppf((1 + p) / 2)) - p) for p in CALIBRATION_LEVELS]
    spacing = np.asarray(moving_spacing, dtype=np.float64)
    error_mm = np.linalg.norm(error * spacing, axis=1)
    sigma_mm = np.linalg.norm(sigma * spacing, axis=1)
    constant = np.ptp(error_mm) == 0 or np.ptp(sigma_mm) == 0
    rho = float("nan") if constant else float(stats.spearmanr(sigma_mm, error_mm).statistic)
    return Calibration(coverage, float(np.mean(gaps)), rho)


def dice_spread(fixed: np.ndarray, moving: np.ndarray, samples: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Per label, the population std over posterior samples (N, *spatial, ndim) of the official Dice.

    NaN for labels Dice scores NaN (absent from the fixed or the moving segmentation).
    """
    scores = np.stack([dice_per_label(fixed, moving, warp_labels_nearest(moving, sample), labels)
                       for sample in samples])
    return scores.std(0)
