"""The cardiac phantom in 3D: the short-axis heart of ``cardiac`` stacked along the long axis into a truncated
ellipsoid, and its motion with long-axis shortening, for the 3D+t population (``cardiac_population`` on a 3D
grid: array axes 0 and 1 span the short-axis plane, axis 2 runs from the apex up to the base).

At height z the slice is the 2D heart shrunk about its centre by a taper: the cavity by
``sqrt(1 - ((base - z) / length)^2)``, the epicardium (and the RV) by the same with the length plus the apical
wall, so the cavity closes before the epicardium does; nothing lies above the base plane (the atria are not
drawn). The motion is the 2D contraction shrunk by the epicardium's taper, so every slice ejects the same share
of its area, and a long-axis stretch about the apex: the base descends towards the apex in systole by
``shortening`` of the length (the atrioventricular plane moves about 12-16 mm in healthy adults, some 15 % of the
LV's length; e.g. Carlsson et al., "Total heart volume variation throughout the cardiac cycle in humans", Am J
Physiol Heart Circ Physiol 287:H243, 2004, figures as recalled, not from a stored copy). A simplification to
know: the myocardium keeps its area in each slice, so it loses the shortening's share of its volume at
end-systole, which a real one does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regbench.tasks.cardiac import Contraction, Heart, label_map

LENGTH_MM = (80.0, 95.0)  # end-diastolic cavity length, base to apex
APICAL_WALL_MM = 8.0  # the myocardium beyond the cavity's apex
SHORTENING = (0.12, 0.18)  # share of the length the base descends by in systole
FLOOR = 0.2  # the least taper of the motion, so that it stays bounded at the apex


@dataclass(frozen=True)
class LongAxis:
    """One subject's long axis.

    Attributes:
        base_mm: height (along array axis 2) of the base plane; the cavity's apex lies ``length_mm`` below it.
        length_mm: end-diastolic cavity length.
        shortening: share of the length lost from end-diastole to end-systole.
    """

    base_mm: float
    length_mm: float
    shortening: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> LongAxis:
        """A long axis of random length and shortening, the ventricle centred along the axis."""
        length = float(rng.uniform(*LENGTH_MM))
        return cls(0.5 * (length + APICAL_WALL_MM), length, float(rng.uniform(*SHORTENING)))

    def _taper(self, z: np.ndarray, length: float) -> np.ndarray:
        """The in-plane scale at heights z of an ellipsoid of ``length`` below the base: 1 at the base, 0 at its
        apex and above the base."""
        depth = (self.base_mm - z) / length
        return np.where(z <= self.base_mm, np.sqrt(np.clip(1.0 - depth**2, 0.0, 1.0)), 0.0)

    def labels(self, heart: Heart, points: np.ndarray) -> np.ndarray:
        """Labels at points (3, ...) in mm: each point's height shrinks the cavity's and the epicardium's slice."""
        centre = heart.centre.reshape(2, *([1] * (points.ndim - 1)))
        offset = points[:2] - centre

        def levels(taper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # a point where the taper vanishes maps far outside every shape
            return heart.levels(centre + offset / np.maximum(taper, 1e-3))

        endo, _, _ = levels(self._taper(points[2], self.length_mm))
        _, epi, rv_cavity = levels(self._taper(points[2], self.length_mm + APICAL_WALL_MM))
        return label_map(endo, epi, rv_cavity)

    def velocity(self, contraction: Contraction, points: np.ndarray) -> np.ndarray:
        """Velocity (3, ...) in mm at points (3, ...) in mm taking end-systolic positions to end-diastolic ones:
        the slice's contraction shrunk by the epicardium's taper (1 above the base), and the stretch along the
        axis about the apex that undoes ``shortening``."""
        z = points[2]
        taper = np.where(z <= self.base_mm,
                         np.maximum(self._taper(z, self.length_mm + APICAL_WALL_MM), FLOOR), 1.0)
        centre = contraction.centre.reshape(2, *([1] * (points.ndim - 1)))
        in_plane = taper * contraction.velocity(centre + (points[:2] - centre) / taper)
        apex = self.base_mm - self.length_mm - APICAL_WALL_MM
        along = -np.log(1.0 - self.shortening) * (z - apex)
        return np.concatenate([in_plane, along[None]])
