"""Memory layout of fields read from NIfTI, so that metrics stream through memory instead of striding.

nibabel returns arrays in Fortran order: for a (H, W, D, 3) field the first axis varies fastest and each
component is one contiguous block. Reversing the spatial axes (``.T``) turns such arrays into C-contiguous
ones, so metrics that work slab by slab along the first axis do so on the reversed ("working") view, and
reverse their results back. Every metric here is unchanged by a permutation of the axes (the Jacobian
determinant included: reversing axes and components conjugates J by a permutation), so only speed depends
on this.
"""

from __future__ import annotations

import numpy as np


def fortran_layout(disp: np.ndarray) -> bool:
    """Whether a (*spatial, ndim) field has its first spatial axis varying fastest (NIfTI's order)."""
    return disp.strides[0] < disp.strides[disp.ndim - 2]


def working_components(disp: np.ndarray, reverse: bool) -> np.ndarray:
    """The field as (ndim, *spatial) components in the working layout: with ``reverse``, the spatial axes are
    reversed and so is the component order (component k moves along working axis k). A view, no copy."""
    components = np.moveaxis(disp, -1, 0)
    if not reverse:
        return components
    return components[::-1].transpose(0, *range(disp.ndim - 1, 0, -1))


def working(array: np.ndarray, reverse: bool) -> np.ndarray:
    """A spatial array (labels, mask, result) in the working layout, or back from it: ``.T`` when reversed."""
    return array.T if reverse else array
