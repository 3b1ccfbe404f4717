"""Dice overlap per label, as the official Learn2Reg evaluation computes it (``utils.compute_dice``).

For each label k: NaN if k is absent from the fixed segmentation or from the *unwarped* moving one (the
official rule: a label the moving image never had cannot be recovered, and it is checked before warping);
otherwise 2 |F_k ∩ W_k| / (|F_k| + |W_k|) with W the warped moving segmentation. The case value is the
nan-mean over labels. Which labels count comes from the evaluation config: the task's foreground labels,
or, in LUMIR's configs, the background 0 too (its Dice is then part of the case mean, as LUMIR scores it).

All labels are counted at once with ``np.bincount`` (chunk by chunk, so no volume-sized temporaries)
instead of one full-volume comparison per label.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence

import numpy as np


_CHUNK = 1 << 20  # voxels per bincount call: its intp copy (8 MB) is reused, not one per whole volume


def _chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, values.size, _CHUNK):
        yield values[start:start + _CHUNK]


def _histogram(chunks: Iterable[np.ndarray], low: int, size: int) -> np.ndarray:
    """Counts of the integers low .. low + size - 1 over all chunks."""
    counts = np.zeros(size, dtype=np.int64)
    for chunk in chunks:
        counts += np.bincount(chunk.astype(np.intp) - low, minlength=size)
    return counts


def _range(flats: Sequence[np.ndarray], wanted: Sequence[int]) -> tuple[int, int]:
    """(low, size) of a histogram covering every value of ``flats`` and every wanted label."""
    low = min([0, *wanted, *(int(f.min()) for f in flats if f.size)])
    high = max([0, *wanted, *(int(f.max()) for f in flats if f.size)])
    return low, high - low + 1


def label_counts(labels: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """Number of voxels of each wanted label (0 for labels that do not occur), in one chunked pass."""
    flat = labels.ravel(order="K")  # memory order: no copy for the Fortran-ordered arrays NIfTI gives
    low, size = _range([flat], wanted)
    return _histogram(_chunks(flat), low, size)[np.asarray(wanted, dtype=np.intp) - low]


def dice_per_label(fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray,
                   labels: Sequence[int]) -> np.ndarray:
    """Dice of each label between the fixed and the warped moving segmentation.

    Args:
        fixed: fixed label map (H, W[, D]).
        moving: the moving label map before warping; only used to decide which labels are NaN.
        warped: the moving label map warped onto the fixed grid (``metrics.warp.warp_labels_nearest``).
        labels: the labels to score (integers, 0 for the background), in output order.

    Returns:
        float64 array, one Dice per label, NaN where the label is absent from ``fixed`` or ``moving``.
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"dice_per_label(): fixed {fixed.shape} and warped {warped.shape} differ in shape")
    order = "F" if fixed.flags.f_contiguous and not fixed.flags.c_contiguous else "C"
    flat_fixed, flat_warped = fixed.ravel(order=order), warped.ravel(order=order)  # the same voxel order
    low, size = _range([flat_fixed, flat_warped], labels)
    index = np.asarray(labels, dtype=np.intp) - low
    fixed_count = _histogram(_chunks(flat_fixed), low, size)[index]
    warped_count = _histogram(_chunks(flat_warped), low, size)[index]
    overlap = (f[f == w] for f, w in zip(_chunks(flat_fixed), _chunks(flat_warped)))
    overlap_count = _histogram(overlap, low, size)[index]
    moving_count = label_counts(moving, labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2.0 * overlap_count / (fixed_count + warped_count)
    return np.where((fixed_count == 0) | (moving_count == 0), np.nan, dice)


def case_mean(values: np.ndarray) -> float:
    """The official case value: the mean over labels ignoring NaN (NaN if every label is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if len(values) else float("nan")
