"""95th-percentile Hausdorff distance per label, as the official Learn2Reg evaluation computes it.

The official code calls DeepMind's surface-distance (``compute_surface_distances`` then
``compute_robust_hausdorff(..., 95)``) with spacing hard-coded to 1, so ``HD95`` is in **voxels**.
Semantics reproduced here:

- Surfaces are surface elements ("surfels") on the grid of voxel corners: every 2x2x2 (2x2 in 2D)
  neighbourhood is coded as a bit pattern, and patterns that are neither empty nor full are surfels,
  each weighted by its marching-cubes area (contour length in 2D) from surface-distance's lookup table.
- Each surfel's distance is the exact Euclidean distance to the nearest surfel of the other surface.
- Per direction, the distances sorted by (distance, area) are cut at the first surfel whose cumulative
  area share reaches 95 %; HD95 is the larger of the two directions.
- NaN where the label is absent from the fixed or the unwarped moving segmentation (the Dice rule);
  ``inf`` where the warped label is empty (no surface to measure to).

``hd95_per_label(..., spacing=...)`` gives the same quantity in mm (the regbench ``HD95_mm`` extension).

How it is faster than the official code (about 25x on an OASIS-sized pair) with the same numbers: label
bounding boxes come from one ``ndimage.find_objects`` pass per label map instead of full-volume projections
per label; neighbour codes are three shift-and-or passes; and instead of a distance transform of each whole
surface, distances are found by searching shells of integer offsets around each surfel, nearest first, only
until the surfels resolved so far hold 95 % of the area - the percentile never looks further. A label whose
95 % point lies beyond ``_SEARCH_RADIUS`` voxels falls back to the official distance transform. The one
possible difference: on the early exit the total area is summed in another order than the official sorted
one, which could matter only if a cumulative share fell within about 1e-16 of 95 %. The surfel-area table
comes from the ``surface-distance`` package itself (what the official evaluation vendors), bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy import ndimage
from surface_distance import lookup_tables

PERCENT = 95.0
_SEARCH_RADIUS = 6  # voxels searched by offset shells before falling back to a distance transform


@cache
def _surfel_areas(spacing: tuple[float, ...]) -> np.ndarray:
    """Surfel area (contour length in 2D) of every neighbour code, from surface-distance's own table."""
    if len(spacing) == 3:
        return lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    if len(spacing) == 2:
        return lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    raise ValueError(f"hd95: only 2D and 3D label maps are supported, got spacing {spacing}")


def _padded(mask: np.ndarray, width: Sequence[int], dtype: type = np.uint8) -> np.ndarray:
    """A C-ordered copy of ``mask`` with ``width[k]`` background voxels added on both sides of axis k."""
    out = np.zeros(tuple(n + 2 * w for n, w in zip(mask.shape, width)), dtype=dtype)
    out[tuple(slice(w, w + n) for n, w in zip(mask.shape, width))] = mask
    return out


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Bit pattern of every 2^ndim corner neighbourhood, as the official correlation with the kernel.

    ``mask`` is padded by one background voxel on every side (shape n + 2, uint8); the result has shape
    n + 1 and entry p codes voxels p - 1 and p along each axis. The official kernel weighs neighbour offset
    (o_0, ..., o_{d-1}) in {0, 1}^d with 2 ** sum_k (1 - o_k) 2^(d-1-k) (128 for all zeros, 1 for all ones
    in 3D): built here one axis at a time, last axis first, by shifting and or-ing.
    """
    codes = mask
    for axis in range(mask.ndim - 1, -1, -1):
        low = tuple(slice(0, -1) if k == axis else slice(None) for k in range(mask.ndim))
        high = tuple(slice(1, None) if k == axis else slice(None) for k in range(mask.ndim))
        codes = (codes[low] << (1 << (mask.ndim - 1 - axis))) | codes[high]
    return codes


def _percentile(distances: np.ndarray, areas: np.ndarray) -> float:
    """The official area-weighted percentile over a whole surface: sort by (distance, area) and take the
    first surfel whose cumulative share of the total area reaches 95 %."""
    order = np.lexsort((areas, distances))
    sorted_areas = areas[order]
    cumulative = np.cumsum(sorted_areas) / np.sum(sorted_areas)
    index = int(np.searchsorted(cumulative, PERCENT / 100.0))
    return float(distances[order[min(index, order.size - 1)]])


@cache
def _shells(spacing: tuple[float, ...]) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """Integer offsets up to ``_SEARCH_RADIUS`` voxels of the finest axis, grouped by length.

    Returns the reach per axis and (length, offsets) groups in increasing length. Lengths are computed as
    ``scipy.ndimage.distance_transform_edt`` computes distances (the square root of the sum, in axis order,
    of (d_k s_k)^2), so a surfel resolved at an offset gets the distance the official EDT gives it.
    """
    radius = _SEARCH_RADIUS * min(spacing)
    reach = np.array([int(radius // s) for s in spacing])
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, len(spacing))
    squared = np.zeros(len(grid))
    for axis, step in enumerate(spacing):
        squared = squared + (grid[:, axis] * step) ** 2
    lengths = np.sqrt(squared)
    order = np.argsort(lengths, kind="stable")
    grid, lengths = grid[order], lengths[order]
    grid, lengths = grid[lengths <= radius], lengths[lengths <= radius]
    values, starts = np.unique(lengths, return_index=True)
    stops = [*starts[1:], len(lengths)]
    return reach, [(float(v), grid[a:b]) for v, a, b in zip(values, starts, stops)]


def _directed(source: np.ndarray, target: np.ndarray, areas: np.ndarray, spacing: tuple[float, ...]) -> float:
    """95th area-weighted percentile of the distances from the surfels ``source`` to the surfels ``target``.

    Exact distances come from shells of integer offsets of growing length around each source surfel: a
    surfel whose shell of length r first meets a target surfel is at distance r. Shells grow only until the
    surfels resolved so far hold 95 % of the area, so only the near part of the surface is searched; if the
    search radius runs out first (a badly registered label), the remaining distances come from a Euclidean
    distance transform of the target, as in the official code.

    ``source`` and ``target`` are C-contiguous; ``areas`` holds the source surfels' areas in C order.
    """
    reach, groups = _shells(spacing)
    padded_target = _padded(target, reach, dtype=bool)
    strides = np.array(padded_target.strides) // padded_target.itemsize
    target_flat = padded_target.ravel()
    points = np.flatnonzero(_padded(source, reach, dtype=bool))  # C order: the order of ``areas``
    total = float(np.sum(areas))
    distances = np.full(len(points), np.inf)
    unresolved = np.arange(len(points))
    sorted_areas: list[np.ndarray] = []  # per shell, ascending: the prefix of the official (distance, area) order
    resolved_area = 0.0
    for length, offsets in groups:
        hit = target_flat[points[unresolved, None] + (offsets @ strides)[None, :]].any(axis=1)
        newly = unresolved[hit]
        unresolved = unresolved[~hit]
        distances[newly] = length
        sorted_areas.append(np.sort(areas[newly]))
        resolved_area += float(sorted_areas[-1].sum())
        if resolved_area >= PERCENT / 100.0 * total * (1 + 1e-9):  # the margin dwarfs rounding in the sums
            near = np.concatenate(sorted_areas)
            index = int(np.searchsorted(np.cumsum(near) / total, PERCENT / 100.0))
            return float(np.sort(distances[distances < np.inf])[min(index, len(near) - 1)])
    if unresolved.size:
        coordinates = np.unravel_index(points[unresolved], padded_target.shape)
        edt = ndimage.distance_transform_edt(~target, sampling=spacing)
        distances[unresolved] = edt[tuple(c - r for c, r in zip(coordinates, reach))]
    return _percentile(distances, areas)


def hd95_masks(fixed_mask: np.ndarray, warped_mask: np.ndarray,
               spacing: tuple[float, ...] | None = None) -> float:
    """HD95 between two boolean masks already cropped to (at least) the bounding box of their union.

    Args:
        fixed_mask, warped_mask: boolean arrays of the same shape, 2D or 3D.
        spacing: voxel size per axis (mm); None means 1 (the official setting, result in voxels).

    Returns:
        The larger of the two directed 95th percentiles; inf if either mask is empty.
    """
    spacing = tuple(float(s) for s in (spacing or (1.0,) * fixed_mask.ndim))
    area_of_code = _surfel_areas(spacing)
    full = np.uint8(2 ** (2 ** fixed_mask.ndim) - 1)  # every corner inside: 0b1111 in 2D, 0xFF in 3D
    codes = [_neighbour_codes(_padded(m, (1,) * m.ndim)) for m in (fixed_mask, warped_mask)]
    # codes are C-ordered (``_padded`` allocates them so), hence borders and areas too
    borders = [(c != 0) & (c != full) for c in codes]
    if not borders[0].any() or not borders[1].any():
        return float("inf")
    areas = [area_of_code[c[b]] for c, b in zip(codes, borders)]
    return max(_directed(borders[0], borders[1], areas[0], spacing),
               _directed(borders[1], borders[0], areas[1], spacing))


def _find_objects(labels: np.ndarray, max_label: int) -> list[tuple[slice, ...] | None]:
    """``ndimage.find_objects`` of labels 1..max_label, scanning a NIfTI (Fortran-ordered) map in memory order."""
    if labels.flags.f_contiguous and not labels.flags.c_contiguous:
        return [box[::-1] if box else None for box in ndimage.find_objects(labels.T, max_label=max_label)]
    return ndimage.find_objects(labels, max_label=max_label)


def _bounding_boxes(labels: np.ndarray, wanted: Sequence[int]) -> list[tuple[slice, ...] | None]:
    """Bounding box of each wanted label, None where absent: one ``find_objects`` pass, and one more for the
    background 0 when it is wanted (``find_objects`` skips 0)."""
    boxes = _find_objects(labels, max(wanted)) if max(wanted) > 0 else []
    background = _find_objects((labels == 0).view(np.uint8), 1)[0] if 0 in wanted else None
    return [background if k == 0 else boxes[k - 1] for k in wanted]


def _union(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def hd95_per_label(fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, labels: Sequence[int], *,
                   spacing: Sequence[float] | None = None) -> np.ndarray:
    """HD95 of each label between the fixed and the warped moving segmentation.

    Args:
        fixed: fixed label map (H, W[, D]).
        moving: the moving label map before warping; only used to decide which labels are NaN.
        warped: the moving label map warped onto the fixed grid (``metrics.warp.warp_labels_nearest``).
        labels: the labels to score (non-negative integers; 0 is the background), in output order.
        spacing: voxel size in mm per axis; None (the official setting) measures in voxels.

    Returns:
        float64 array, one value per label: NaN where absent from ``fixed`` or ``moving``, inf where the
        warped label is empty.
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"hd95_per_label(): fixed {fixed.shape} and warped {warped.shape} differ in shape")
    if not labels:
        return np.empty(0)
    if min(labels) < 0:
        raise ValueError(f"hd95_per_label(): labels must be non-negative, got {list(labels)}")
    spacing_t = None if spacing is None else tuple(float(s) for s in spacing)
    fixed_boxes = _bounding_boxes(fixed, labels)
    moving_boxes = _bounding_boxes(moving, labels)
    warped_boxes = _bounding_boxes(warped, labels)
    result = np.full(len(labels), np.nan)
    for i, label in enumerate(labels):
        if fixed_boxes[i] is None or moving_boxes[i] is None:
            continue
        if warped_boxes[i] is None:
            result[i] = np.inf
            continue
        box = _union(fixed_boxes[i], warped_boxes[i])
        result[i] = hd95_masks(fixed[box] == label, warped[box] == label, spacing_t)
    return result
