"""Building blocks of analytic phantoms: a centred voxel grid, smooth random fields and shapes, all in mm.

A synthetic task draws an anatomy once (shapes with random parameters) and evaluates it at the points each
image samples: its voxel centres pushed through that image's deformation. The anatomy is a function of
continuous position, so every image is sampled from it exactly once and never resampled from another image,
and the labels are exact at every sampled point.

Coordinates are world millimetres with the origin at the centre of the field of view. Axis c of a point array
is array axis c of the images, which the NIfTI affine maps to world axis c (RAS+: axis 0 towards the
patient's right, 1 anterior, 2 superior). Point arrays are (3, ...) like the displacement fields of
``tasks/synth.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

from regbench.errors import DatasetError
from regbench.image import Shape, Spacing, affine_from_spacing
from regbench.tasks.spec import TaskSpec


@dataclass(frozen=True)
class Grid:
    """A voxel grid centred on the phantom's origin.

    Attributes:
        shape: voxels along each array axis.
        spacing: voxel size in mm along each array axis.
    """

    shape: Shape
    spacing: Spacing

    @classmethod
    def covering(cls, shape: Shape, fov_mm: tuple[float, ...]) -> Grid:
        """The grid of ``shape`` whose voxels tile ``fov_mm``: every scale of a task sees the same anatomy."""
        if len(shape) != len(fov_mm):
            raise ValueError(f"Grid.covering(): shape {shape} and field of view {fov_mm} differ in length")
        return cls(tuple(int(n) for n in shape), tuple(float(f) / n for f, n in zip(fov_mm, shape)))

    @property
    def extent_mm(self) -> tuple[float, ...]:
        """Size of the field of view along each axis."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing))

    @property
    def origin_mm(self) -> np.ndarray:
        """World position of voxel (0, 0, 0): the grid's centre lies at the origin."""
        return -(np.asarray(self.shape) - 1) / 2 * np.asarray(self.spacing)

    @property
    def affine(self) -> np.ndarray:
        """The NIfTI affine that places each voxel at its phantom position."""
        return affine_from_spacing(self.spacing, tuple(self.origin_mm))

    def coarsened(self, factor: int) -> Grid:
        """The grid with ``factor`` times fewer voxels per axis over the same field of view and centre.

        Its voxel centres sit at fine voxel ``(factor - 1) / 2 + factor * j``: the ``align_corners=False``
        convention of ``upsample_disp``.
        """
        if any(n % factor for n in self.shape):
            raise ValueError(f"Grid.coarsened(): shape {self.shape} is not divisible by {factor}")
        return Grid(tuple(n // factor for n in self.shape), tuple(s * factor for s in self.spacing))

    def _column(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).reshape(-1, *([1] * len(self.shape)))

    def points_mm(self, disp: np.ndarray | None = None) -> np.ndarray:
        """Positions (ndim, *shape) in mm of the voxel centres, moved by ``disp`` (ndim, *shape) voxels if given."""
        axes = [np.arange(n, dtype=np.float64) for n in self.shape]
        index = np.stack(np.meshgrid(*axes, indexing="ij"))
        if disp is not None:
            index = index + disp
        return index * self._column(self.spacing) + self._column(self.origin_mm)

    def to_voxels(self, vectors_mm: np.ndarray) -> np.ndarray:
        """Vectors (ndim, ...) in mm as voxel units of this grid (a velocity or displacement field)."""
        return vectors_mm / np.asarray(self.spacing).reshape(-1, *([1] * (vectors_mm.ndim - 1)))

    def index_of(self, points_mm: np.ndarray) -> np.ndarray:
        """Continuous voxel index (N, ndim) of points (N, ndim) in mm: the inverse of ``points_mm``."""
        return (points_mm - self.origin_mm) / np.asarray(self.spacing)


def upsample_disp(disp: np.ndarray, factor: int) -> np.ndarray:
    """A displacement (ndim, *shape) on a ``Grid.coarsened(factor)`` grid, interpolated onto the fine grid.

    (Tri)linear interpolation with ``align_corners=False`` (the voxel centres of ``coarsened``), values scaled
    from coarse to fine voxels; the outermost half coarse voxel repeats the edge. Meant for smooth fields,
    where a coarse grid integrates velocities at a fraction of the cost.
    """
    if factor == 1:
        return disp
    ndim = disp.shape[0]
    mode = "bilinear" if ndim == 2 else "trilinear"
    coarse = torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float64))[None]
    fine = F.interpolate(coarse, scale_factor=factor, mode=mode, align_corners=False)
    return factor * fine[0].numpy()


@dataclass(frozen=True)
class RandomField:
    """A smooth random field defined everywhere: a cubic B-spline with random coefficients on a lattice.

    The field is scaled to unit root-mean-square per channel (over its lattice nodes), so an amplitude
    multiplying it is the typical value. It is drawn in mm, independent of any image grid, so the same
    random draws give the same field at every scale. Beyond the lattice the edge coefficients repeat.

    Attributes:
        coefficients: (channels, *lattice) B-spline coefficients.
        origin_mm: position of lattice node 0.
        cell_mm: lattice spacing, about the field's correlation length.
    """

    coefficients: np.ndarray
    origin_mm: np.ndarray
    cell_mm: float

    @classmethod
    def draw(cls, rng: np.random.Generator, extent_mm: tuple[float, ...], *, cell_mm: float,
             channels: int = 1) -> RandomField:
        """A field over the box ``extent_mm`` centred on the origin, with two cells of margin on every side."""
        lattice = tuple(int(np.ceil(e / cell_mm)) + 5 for e in extent_mm)
        origin = -(np.asarray(lattice, dtype=np.float64) - 1) / 2 * cell_mm
        raw = cls(rng.standard_normal((channels, *lattice)), origin, float(cell_mm))
        nodes = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in lattice], indexing="ij"))
        nodes_mm = nodes * cell_mm + origin.reshape(-1, *([1] * len(lattice)))
        rms = np.sqrt(np.mean(raw(nodes_mm) ** 2, axis=tuple(range(1, len(lattice) + 1))))
        return cls(raw.coefficients / rms.reshape(-1, *([1] * len(lattice))), origin, float(cell_mm))

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        """Values (channels, ...) at points (ndim, ...) in mm."""
        shape = (-1, *([1] * (points_mm.ndim - 1)))
        index = (points_mm - self.origin_mm.reshape(shape)) / self.cell_mm
        return np.stack([ndimage.map_coordinates(c, index, order=3, prefilter=False, mode="nearest")
                         for c in self.coefficients])

    def on_grid(self, grid: Grid) -> np.ndarray:
        """Values (channels, *grid.shape) at the voxel centres: the same as ``self(grid.points_mm())``.

        The B-spline is separable and the grid axis-aligned, so one weight matrix per axis does it, far faster
        than interpolating at every voxel.
        """
        values = self.coefficients
        for axis, (n, spacing, origin) in enumerate(zip(grid.shape, grid.spacing, grid.origin_mm)):
            index = (origin + spacing * np.arange(n) - self.origin_mm[axis]) / self.cell_mm
            nodes = np.arange(values.shape[axis + 1])
            if index.min() < 1 or index.max() > nodes[-1] - 1:
                raise ValueError("RandomField.on_grid(): the grid reaches beyond the field's lattice; draw the "
                                 "field over an extent that holds the grid")
            weights = _cubic_bspline(index[:, None] - nodes[None, :])
            values = np.moveaxis(np.tensordot(values, weights, axes=([axis + 1], [1])), -1, axis + 1)
        return values


def _cubic_bspline(x: np.ndarray) -> np.ndarray:
    """The cubic B-spline kernel, the one ``map_coordinates(order=3, prefilter=False)`` interpolates with."""
    x = np.abs(x)
    return np.where(x < 1, 2 / 3 - x**2 + x**3 / 2, np.where(x < 2, (2 - x) ** 3 / 6, 0.0))


def rotation_matrix(degrees: tuple[float, float, float]) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about axes 0, 1 and 2 in turn (extrinsic)."""
    return Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()


def ellipsoid_radius(points_mm: np.ndarray, centre: np.ndarray, semi_axes: np.ndarray,
                     rotation: np.ndarray | None = None) -> np.ndarray:
    """Normalised radius of points (3, ...) in an ellipsoid: 0 at the centre, 1 on the surface.

    ``rotation`` turns the ellipsoid's own axes (columns) into world axes.
    """
    shape = (-1, *([1] * (points_mm.ndim - 1)))
    local = points_mm - np.asarray(centre, dtype=np.float64).reshape(shape)
    if rotation is not None:
        local = np.tensordot(np.asarray(rotation).T, local, axes=1)
    return np.sqrt(np.sum((local / np.asarray(semi_axes, dtype=np.float64).reshape(shape)) ** 2, axis=0))


def ellipse_level(x: np.ndarray, y: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """About the signed distance (mm) to the ellipse (x/a)^2 + (y/b)^2 = 1: negative inside.

    First order, (r - 1) / |grad r|: exact on the axes and good to a few per cent near the curve; inside it
    is bounded by the smaller semi-axis, which no inner point can be farther than.
    """
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    gradient = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2) / np.maximum(r, 1e-9)
    return np.maximum((r - 1) / np.maximum(gradient, 1e-9), -np.minimum(a, b))


@dataclass(frozen=True)
class Blob:
    """A smooth random solid: an ellipsoid whose surface is pushed in and out by a random field.

    Inside where ``radius - 1 < bump * field``, with radius the ellipsoid's normalised radius; ``bump`` is
    the typical relative change of the radius (0.1 moves the surface by about a tenth of a semi-axis).
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    bump: float
    field: RandomField

    @classmethod
    def draw(cls, rng: np.random.Generator, centre: tuple[float, float, float],
             semi_axes: tuple[float, float, float], *, degrees: tuple[float, float, float] = (0.0, 0.0, 0.0),
             bump: float = 0.1, jitter: float = 0.1) -> Blob:
        """A blob near the given pose: centre, semi-axes and angles each vary by ``jitter`` (relative).

        The centre moves by up to ``jitter`` times the mean semi-axis and the angles by up to ``jitter``
        times 90 degrees. The surface field's correlation length is half the smallest semi-axis.
        """
        semi = np.asarray(semi_axes, dtype=np.float64)
        centre_moved = np.asarray(centre) + rng.uniform(-jitter, jitter, 3) * semi.mean()
        semi_scaled = semi * (1 + rng.uniform(-jitter, jitter, 3))
        angles = np.asarray(degrees) + rng.uniform(-jitter, jitter, 3) * 90
        field = RandomField.draw(rng, tuple(2.5 * semi_scaled), cell_mm=semi_scaled.min() / 2)
        return cls(centre_moved, semi_scaled, rotation_matrix(tuple(angles)), bump, field)

    def level(self, points_mm: np.ndarray) -> np.ndarray:
        """Negative inside, positive outside, about (distance / semi-axis) near the surface."""
        radius = ellipsoid_radius(points_mm, self.centre, self.semi_axes, self.rotation)
        level = radius - 1
        near = np.abs(level) < 4 * self.bump
        if near.any():
            local = points_mm[:, near] - self.centre[:, None]
            level[near] -= self.bump * self.field(local)[0]
        return level

    def contains(self, points_mm: np.ndarray) -> np.ndarray:
        return self.level(points_mm) < 0


def segment_distance(points_mm: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (3, ...) to the segment start-end, and the position t in [0, 1] of the nearest point."""
    shape = (-1, *([1] * (points_mm.ndim - 1)))
    start = np.asarray(start, dtype=np.float64)
    axis = np.asarray(end, dtype=np.float64) - start
    relative = points_mm - start.reshape(shape)
    t = np.clip(np.tensordot(axis, relative, axes=1) / max(axis @ axis, 1e-12), 0.0, 1.0)
    return np.linalg.norm(relative - t[None] * axis.reshape(shape), axis=0), t


class Canvas:
    """Paints tissues and structures onto points, the most important shape first.

    An anatomy is a list of ``paint`` calls; each sees only the points still open, so a later shape never
    overwrites an earlier one and is evaluated only where it can still show. Tissues decide intensities,
    structures decide labels (index 0: no structure).
    """

    def __init__(self, points_mm: np.ndarray, tissues: Sequence[str], structures: Sequence[str]) -> None:
        count = points_mm[0].size
        self._points = points_mm.reshape(points_mm.shape[0], count)
        self._tissue_index = {name: i for i, name in enumerate(tissues)}
        self._structure_index = {name: i + 1 for i, name in enumerate(structures)}
        self.tissue = np.zeros(count, dtype=np.intp)
        self.structure = np.zeros(count, dtype=np.intp)
        self._todo = np.arange(count)
        self._open: np.ndarray | None = None

    @property
    def open(self) -> np.ndarray:
        """Points (ndim, n) not painted yet."""
        if self._open is None:
            self._open = self._points[:, self._todo]
        return self._open

    def paint(self, where: np.ndarray, tissue: str, structure: str | None = None) -> None:
        """Give the open points selected by ``where`` (a mask over ``open``) a tissue and a structure."""
        chosen = self._todo[where]
        self.tissue[chosen] = self._tissue_index[tissue]
        self.structure[chosen] = self._structure_index[structure] if structure else 0
        self._todo = self._todo[~where]
        self._open = None

    def fill(self, tissue: str, structure: str | None = None) -> None:
        """Paint every open point."""
        self.paint(np.ones(len(self._todo), dtype=bool), tissue, structure)


@dataclass(frozen=True)
class Spine:
    """Vertebral column along axis 2: bodies with discs, and behind them canal, arch and processes (mm).

    Paints tissues ``disc``, ``marrow``, ``cortical_bone`` and ``csf``. Structure ``spine`` is the column of
    vertebral bodies and discs; arch and processes, a few voxels thin, are bone without a label (their Dice
    would measure the voxel size more than the registration).

    Attributes:
        y_body: axis-1 position of the vertebral bodies' centre at height 0.
        tilt: change of that position per mm of height (a straight, leaning column).
        disc_phase: height of a disc's lower end; discs repeat every ``period_mm``.
    """

    y_body: float
    tilt: float
    disc_phase: float
    period_mm: float = 32.0
    disc_mm: float = 7.0

    def centre_y(self, z: np.ndarray) -> np.ndarray:
        return self.y_body + self.tilt * z

    def canal_y(self, z: np.ndarray) -> np.ndarray:
        return self.centre_y(z) - 27

    def paint(self, canvas: Canvas) -> None:
        """Paint the column onto the canvas's open points. Sizes (mm) are a lumbar vertebra's: body semi-axes
        22 x 17 with a 2.6 mm cortex, canal of radius 10 centred 27 behind the body's centre, arch 6 thick,
        spinous process 8 wide reaching 30 behind the canal, transverse processes 40 to each side."""
        p = canvas.open
        body = (p[0] / 22) ** 2 + ((p[1] - self.centre_y(p[2])) / 17) ** 2
        disc = (body < 1) & (np.mod(p[2] - self.disc_phase, self.period_mm) < self.disc_mm)
        canvas.paint(disc, "disc", "spine")
        body = body[~disc]
        canvas.paint(body < 0.72, "marrow", "spine")
        canvas.paint(body[body >= 0.72] < 1, "cortical_bone", "spine")
        p = canvas.open
        canal_y = self.canal_y(p[2])
        ring = np.hypot(p[0], p[1] - canal_y)
        phase = np.mod(p[2] - self.disc_phase, self.period_mm)  # arch and processes belong to the vertebrae
        arch = (phase > self.disc_mm + 2) & (phase < self.period_mm - 2)
        spinous = (np.abs(p[0]) < 4) & (p[1] < canal_y - 9) & (p[1] > canal_y - 30)
        transverse = (np.abs(p[1] - canal_y - 2) < 4) & (np.abs(p[0]) >= 10) & (np.abs(p[0]) < 40)
        middle = np.abs(phase - (self.disc_mm + self.period_mm) / 2) < 5
        bone = (arch & (((ring >= 10) & (ring < 16)) | spinous)) | (middle & transverse)
        canvas.paint(bone, "cortical_bone")
        canvas.paint(ring[~bone] < 10, "csf")


def label_table(spec: TaskSpec, structures: Sequence[str]) -> np.ndarray:
    """Lookup from structure index (``Canvas`` numbering) to the task's label id; 0 where the task has none.

    A task YAML names the structure behind each label id, so one phantom serves tasks with different label sets.
    """
    table = np.zeros(len(structures) + 1, dtype=np.uint8)
    for label, name in spec.labels.items():
        if name not in structures:
            raise DatasetError(spec.path or spec.name, f"label {label} {name!r} is not a structure of generator "
                                                       f"{spec.generator!r}; choose from {', '.join(structures)}")
        table[structures.index(name) + 1] = label
    return table
