"""How accurate a registration of a perturbed pair is, scored with the official metric code on the original pair.

A method registers the perturbed pair (fixed, moving o T) and returns u'. Following u' and then the chain's
geometric displacement g leads from a fixed voxel to the original moving image: c = u' + g(x + u'(x))
(``regbench.spatial.compose``). Scoring c against the original pair's labels, keypoints or true displacement
is the same as scoring u' against the perturbed pair's exact ground truth, with one nearest-neighbour label
resampling as on clean pairs. Scoring the perturbed pair's own label map instead would add a second one,
which costs a perfect registration 0.01 (organ-sized structures) to 0.1 (structures a few voxels across) of
Dice (``regbench.advchain``) and would blur robustness with resampling. Distances (TRE, displacement
error) are therefore in mm of the original moving image.

Two numbers per registration:

- **accuracy**, what the robustness tables show: TRE of the keypoints (``TRE_kp``, mm) on keypoint tasks, else
  mean Dice over the labels (``DSC``), else the displacement error (``disp_error_mm``);
- **error**, what the adversarial search maximises: the mean displacement error against the truth where there
  is one (synthetic tasks), else the keypoint TRE, else 1 - DSC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from regbench import spatial
from regbench.advchain import AdvChain
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.metrics.dice import case_mean, dice_per_label
from regbench.metrics.displacement_error import displacement_error_mm, evaluation_region
from regbench.metrics.tre import tre_mm
from regbench.metrics.warp import warp_labels_nearest
from regbench.pair import Pair


@dataclass(frozen=True)
class Score:
    """The accuracy and the error of one registration (module docstring), with their metric names."""

    metric: str
    accuracy: float
    error_metric: str
    error: float


def fixed_labels(pair: Pair, labels: Sequence[int] | None) -> list[int]:
    """The labels Dice counts: ``labels`` if given, else every nonzero label of the fixed label map."""
    if labels is not None:
        return [int(k) for k in labels]
    return [int(k) for k in np.unique(pair.fixed.labels.data) if k != 0]


def _has_keypoints(pair: Pair) -> bool:
    return pair.fixed.keypoints is not None and pair.moving.keypoints is not None


def _has_labels(pair: Pair) -> bool:
    return pair.fixed.labels is not None and pair.moving.labels is not None


def check_scorable(pair: Pair, truth: Displacement | None) -> None:
    """Raise unless the pair has something to score against: keypoints, label maps or a true displacement."""
    if not (_has_keypoints(pair) or _has_labels(pair) or truth is not None):
        raise RegbenchError(f"robustness: pair {pair.id.key} has no keypoints, no label maps and no true "
                            "displacement, so no accuracy can be measured on it")


def score_registration(pair: Pair, disp: Displacement, truth: Displacement | None = None, *,
                       labels: Sequence[int] | None = None) -> Score:
    """Accuracy and error of ``disp`` (fixed grid, pointing into ``pair``'s moving image) on ``pair``."""
    check_scorable(pair, truth)
    spacing = pair.moving.image.spacing
    values: dict[str, float] = {}
    if _has_keypoints(pair):
        values["TRE_kp"] = float(tre_mm(pair.fixed.keypoints, pair.moving.keypoints, disp.data, spacing).mean())
    if _has_labels(pair):
        moving = pair.moving.labels.data
        warped = warp_labels_nearest(moving, disp.data)
        values["DSC"] = case_mean(dice_per_label(pair.fixed.labels.data, moving, warped, fixed_labels(pair, labels)))
    if truth is not None:
        region = evaluation_region(pair.fixed.image.shape, None if pair.fixed.mask is None else pair.fixed.mask.data,
                                   None if pair.fixed.labels is None else pair.fixed.labels.data)
        values["disp_error_mm"] = displacement_error_mm(disp.data, truth.data, spacing, region).mean_mm
    metric = next(name for name in ("TRE_kp", "DSC", "disp_error_mm") if name in values)
    error_metric = next(name for name in ("disp_error_mm", "TRE_kp", "DSC") if name in values)
    error = 1.0 - values["DSC"] if error_metric == "DSC" else values[error_metric]
    return Score(metric, values[metric], "1-DSC" if error_metric == "DSC" else error_metric, error)


def back_to_moving(disp: torch.Tensor, chain: AdvChain) -> torch.Tensor:
    """c = u' + g(x + u'(x)): a displacement (1, ndim, *fixed) into the perturbed moving image, continued
    through the chain's geometric part into the original moving image. Differentiable in both."""
    return spatial.compose(disp.to(chain.dtype), chain.geometric_disp())


def score_perturbed(pair: Pair, chain: AdvChain, disp: Displacement, truth: Displacement | None = None, *,
                    labels: Sequence[int] | None = None) -> Score:
    """Accuracy and error of ``disp``, a registration of ``pair`` perturbed by ``chain``, scored on the
    original ``pair`` and its ``truth`` (module docstring)."""
    with torch.no_grad():
        composed = back_to_moving(disp.to_torch(torch.float64), chain)
    return score_registration(pair, Displacement.from_torch(composed), truth, labels=labels)
