"""Synthetic inspiration/expiration thorax CT (task ``thorax_ct``): sliding lungs, vessel keypoints for TRE.

Each subject gets its own analytic anatomy (``tasks/phantom.py``): a trunk with fat, muscle and ribs, the
vertebral column, two lungs filling the pleural cavity above the diaphragm domes, a branching vessel tree in
each lung, heart and mediastinum with trachea, main bronchi and descending aorta, the liver under the right
dome. The inspiration scan (``_0000``, fixed) shows the anatomy as drawn; the expiration scan (``_0001``,
moving) samples it at ``y + exp(v)(y)``, where the breathing velocity v (mm; ``Breathing``):

- moves the cavity's content (lungs, mediastinum, abdomen) cranio-caudally, from nothing at the lung apex to
  the full diaphragm excursion at the domes and below, while chest wall and spine follow only a fraction of
  it: the lungs slide along the pleura. The two motions blend across the cavity wall over ``sliding_vox``
  voxels, so v stays smooth and exp(v) diffeomorphic;
- widens the chest antero-posteriorly and laterally (the same inside and out: no sliding there);
- adds a small smooth random motion.

A fixed voxel x shows the anatomy at x; the expiration scan shows that point at y with y + exp(v)(y) = x, so
the true field is exp(-v). Keypoints sit on vessel centrelines at whole fixed voxels; their moving positions
integrate the point ODE dp/dt = -v(p) with RK4 on the analytic velocity, independent of the gridded scaling
and squaring that made the images. Expiration lungs hold less air: lung parenchyma attenuation follows the
local volume change (mass conservation), as in real breath-hold pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy import ndimage, special
from scipy.spatial import cKDTree

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId, PairId
from regbench.spatial import jacobian_det
from regbench.tasks import synth
from regbench.tasks.cohort import Cohort
from regbench.tasks.generate import SyntheticData
from regbench.tasks.phantom import (Blob, Canvas, Grid, RandomField, Spine, ellipse_level, label_table,
                                    segment_distance, upsample_disp)
from regbench.tasks.spec import Scale, TaskSpec

TISSUES: dict[str, float] = {  # CT in HU (non-contrast)
    "air": -1000.0,
    "lung": -860.0,
    "fat": -100.0,
    "mediastinum": -40.0,
    "muscle": 45.0,
    "blood": 40.0,
    "liver": 60.0,
    "abdomen": 30.0,
    "rib": 350.0,
    "cortical_bone": 700.0,
    "marrow": 250.0,
    "disc": 80.0,
    "csf": 10.0,
}
TISSUE_INDEX = {name: i for i, name in enumerate(TISSUES)}
STRUCTURES = ("left_lung", "right_lung", "heart", "spine")
VESSEL_HU = 40.0
MEDIASTINUM_MM = 16.0  # half-width of the mediastinum above the heart


def smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 3t^2 - 2t^3 between: a C1 ramp."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _turn(rng: np.random.Generator, direction: np.ndarray, low_deg: float, high_deg: float) -> np.ndarray:
    """Unit directions (n, 3) turned by a random angle in [low, high] degrees about a random perpendicular axis."""
    axis = np.cross(direction, rng.standard_normal(direction.shape))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.radians(rng.uniform(low_deg, high_deg, len(direction)))[:, None]
    return np.cos(angle) * direction + np.sin(angle) * np.cross(axis, direction)


@dataclass(frozen=True)
class VesselTree:
    """Vessel segments (mm) of both lungs: ``starts`` and ``ends`` (n, 3), ``radii`` (n,)."""

    starts: np.ndarray
    ends: np.ndarray
    radii: np.ndarray

    @classmethod
    def empty(cls) -> VesselTree:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))

    @classmethod
    def grow(cls, rng: np.random.Generator, roots: list[tuple[np.ndarray, np.ndarray]], *, length_mm: float,
             radius_mm: float, min_radius_mm: float, inside: Callable[[np.ndarray], np.ndarray]) -> VesselTree:
        """Grow trees from ``roots`` (start, direction) by repeated bifurcation until the radius is spent.

        Each branch forks into two children, each turned 20-40 degrees from it about a random axis, 70-85 % as
        long and 68-78 % as thick. A branch whose end leaves the lung (``inside`` of points (3, n)) turns
        30-60 degrees more and shortens by a third, up to three times; then it is dropped with its subtree.
        """
        start = np.array([r[0] for r in roots], dtype=np.float64)
        direction = np.array([r[1] / np.linalg.norm(r[1]) for r in roots])
        length = np.full(len(roots), length_mm)
        radius = np.full(len(roots), radius_mm)
        segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while len(start):
            ok = inside((start + direction * length[:, None]).T)
            for _ in range(3):
                retry = np.flatnonzero(~ok)
                if not len(retry):
                    break
                direction[retry] = _turn(rng, direction[retry], 30, 60)
                length[retry] *= 2 / 3
                ok[retry] = inside((start[retry] + direction[retry] * length[retry, None]).T)
            start, direction, length, radius = start[ok], direction[ok], length[ok], radius[ok]
            end = start + direction * length[:, None]
            segments.append((start, end, radius))
            count = len(start)
            start = np.concatenate([end, end])
            direction = np.concatenate([_turn(rng, direction, 20, 40), _turn(rng, direction, 20, 40)])
            length = np.concatenate([length, length]) * rng.uniform(0.7, 0.85, 2 * count)
            radius = np.concatenate([radius, radius]) * rng.uniform(0.68, 0.78, 2 * count)
            thick = radius >= min_radius_mm
            start, direction, length, radius = start[thick], direction[thick], length[thick], radius[thick]
        return cls(*(np.concatenate(parts) for parts in zip(*segments))) if segments else cls.empty()

    def centreline(self, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Points (m, 3) every ``step_mm`` or less along every segment, and the radius there (m,)."""
        counts = np.maximum(np.ceil(np.linalg.norm(self.ends - self.starts, axis=1) / step_mm), 1).astype(int)
        segment = np.repeat(np.arange(len(counts)), counts + 1)
        first = np.repeat(np.cumsum(counts + 1) - (counts + 1), counts + 1)
        t = (np.arange(len(segment)) - first) / counts[segment]
        points = self.starts[segment] + t[:, None] * (self.ends - self.starts)[segment]
        return points, self.radii[segment]


@dataclass(frozen=True)
class Thorax:
    """One subject's anatomy in mm (origin mid-chest); ``evaluate`` gives what every point shows.

    Attributes:
        a, b, y0: semi-axes and axis-1 centre of the trunk's elliptic cross-section.
        fat_mm, muscle_mm: thickness of the subcutaneous fat and of the chest wall (muscle and ribs).
        apex_z, cap_mm: height of the lung apices; the cavity narrows like an ellipsoid over the top cap_mm.
        dome_right, dome_left: heights of the diaphragm domes.
        carina_z: height of the tracheal bifurcation; main bronchi and vessel roots start below it.
        rib_phase: height offset of the rib pattern.
        spine, heart: the vertebral column and the heart.
        vessels: the pulmonary vessel trees.
    """

    a: float
    b: float
    y0: float
    fat_mm: float
    muscle_mm: float
    apex_z: float
    cap_mm: float
    dome_right: float
    dome_left: float
    carina_z: float
    rib_phase: float
    spine: Spine
    heart: Blob
    vessels: VesselTree

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Thorax:
        """A subject: sizes and heights drawn around an adult chest's, vessel trees grown from the hila."""
        a, b = rng.uniform(110, 120), rng.uniform(85, 95)
        fat = rng.uniform(8, 16)
        y0 = -5.0
        dome_right = rng.uniform(-85, -70)
        dome_left = dome_right - rng.uniform(8, 18)
        apex_z = rng.uniform(115, 128)
        spine = Spine(y_body=y0 - b + fat + 45, tilt=rng.uniform(-0.05, 0.05), disc_phase=rng.uniform(0, 28),
                      period_mm=28.0, disc_mm=6.0)
        heart = Blob.draw(rng, (-18, y0 + 30, dome_right + 45), (50, 38, 45), degrees=(0, 20, -30), bump=0.05)
        thorax = cls(a=a, b=b, y0=y0, fat_mm=fat, muscle_mm=rng.uniform(11, 14), apex_z=apex_z,
                     cap_mm=rng.uniform(50, 70), dome_right=dome_right, dome_left=dome_left,
                     carina_z=apex_z - rng.uniform(80, 95), rib_phase=rng.uniform(0, 24), spine=spine, heart=heart,
                     vessels=VesselTree.empty())
        roots = []
        for side in (1.0, -1.0):
            hilum = np.array([side * 40, y0 - 15, thorax.carina_z - 30])
            for direction in ((0.3, 0, 1), (0.6, 0.2, -0.8), (0.4, -0.7, -0.6), (0.8, 0.5, 0.1), (0.5, -0.6, 0.6)):
                turned = np.array(direction) * (side, 1, 1) + rng.uniform(-0.2, 0.2, 3)
                roots.append((hilum, turned))
        vessels = VesselTree.grow(rng, roots, length_mm=30, radius_mm=5.5, min_radius_mm=0.7,
                                  inside=lambda p: thorax.in_lung(p, margin_mm=3))
        return dataclasses.replace(thorax, vessels=vessels)

    @property
    def wall_mm(self) -> float:
        return self.fat_mm + self.muscle_mm

    def cavity_level(self, p: np.ndarray) -> np.ndarray:
        """About the signed distance (mm) to the wall of the pleural and abdominal cavity: negative inside.

        The cavity is the trunk inside its wall, less a posterior notch around spine and back muscles, closing
        like an ellipsoid over the lung apices.
        """
        above = np.clip((p[2] - self.apex_z + self.cap_mm) / self.cap_mm, 0, 1)
        scale = np.sqrt(np.maximum(1 - above**2, 1e-4))
        wall = ellipse_level(p[0], p[1] - self.y0, (self.a - self.wall_mm) * scale, (self.b - self.wall_mm) * scale)
        notch = ellipse_level(p[0], p[1] - self.spine.centre_y(p[2]) + 20, 42, 42)
        return np.maximum(wall, -notch)

    def dome_z(self, p: np.ndarray) -> np.ndarray:
        """Height of the diaphragm under (x, y): two domes, the right one higher, lowest at the back."""
        right = 0.5 + 0.5 * np.tanh(p[0] / 20)
        top = self.dome_left + (self.dome_right - self.dome_left) * right
        lateral = (np.abs(p[0]) - 0.4 * (self.a - self.wall_mm)) / (0.6 * (self.a - self.wall_mm))
        depth = (p[1] - self.y0) / (self.b - self.wall_mm)
        return top - 35 * lateral**2 - np.where(depth < 0, 40.0, 15.0) * depth**2

    def in_lung(self, p: np.ndarray, *, margin_mm: float = 0.0) -> np.ndarray:
        """Whether points (3, ...) lie in a lung, at least ``margin_mm`` from its boundary (mediastinum, heart,
        diaphragm, pleura; airways and aorta ignored)."""
        return ((self.cavity_level(p) < -margin_mm) & (p[2] > self.dome_z(p) + margin_mm)
                & (np.abs(p[0]) > MEDIASTINUM_MM + margin_mm)
                & (self.heart.level(p) * self.heart.semi_axes.min() > margin_mm))

    def evaluate(self, points_mm: np.ndarray, *, vessel_sigma_mm: float) -> tuple[np.ndarray, ...]:
        """Tissue and structure indices and the vessel fraction (partial volume, in lungs) at points (3, ...)."""
        canvas = Canvas(points_mm, tuple(TISSUES), STRUCTURES)
        p = canvas.open
        body = ellipse_level(p[0], p[1] - self.y0, self.a, self.b)
        canvas.paint(body >= 0, "air")
        p = canvas.open
        canvas.paint(ellipse_level(p[0], p[1] - self.y0, self.a - self.fat_mm, self.b - self.fat_mm) >= 0, "fat")
        p = canvas.open
        wall = ellipse_level(p[0], p[1] - self.y0, self.a - self.wall_mm, self.b - self.wall_mm) >= 0
        rib = wall & self._ribs(p)
        canvas.paint(rib, "rib")
        canvas.paint(wall[~rib], "muscle")
        self.spine.paint(canvas)
        canvas.paint(self.cavity_level(canvas.open) >= 0, "muscle")
        canvas.paint(self._airways(canvas.open), "air")
        p = canvas.open
        aorta = np.hypot(p[0] + 24, p[1] - self.spine.centre_y(p[2]) - 26) < 12
        canvas.paint(aorta & (p[2] < self.carina_z + 15), "blood")
        p = canvas.open
        below = p[2] <= self.dome_z(p)
        canvas.paint(below & (p[0] > -15), "liver")
        canvas.paint(canvas.open[2] <= self.dome_z(canvas.open), "abdomen")
        canvas.paint(self.heart.contains(canvas.open), "blood", "heart")
        canvas.paint(np.abs(canvas.open[0]) <= MEDIASTINUM_MM, "mediastinum")
        canvas.paint(canvas.open[0] > 0, "lung", "right_lung")  # RAS: axis 0 points to the patient's right
        canvas.fill("lung", "left_lung")
        lung = canvas.tissue == TISSUE_INDEX["lung"]
        vessel = np.zeros(lung.shape)
        vessel[lung] = self._vessel_fraction(points_mm.reshape(3, -1)[:, lung], vessel_sigma_mm)
        shape = points_mm.shape[1:]
        return canvas.tissue.reshape(shape), canvas.structure.reshape(shape), vessel.reshape(shape)

    def _ribs(self, p: np.ndarray) -> np.ndarray:
        """Ribs in the chest wall: 9 mm bands every 24 mm, running 30 mm lower in front than at the back."""
        middle = ellipse_level(p[0], p[1] - self.y0, self.a - self.fat_mm - self.muscle_mm / 2,
                               self.b - self.fat_mm - self.muscle_mm / 2)
        front = 0.5 + 0.5 * (p[1] - self.y0) / np.maximum(np.hypot(p[0], p[1] - self.y0), 1e-9)
        band = np.mod(p[2] + 30 * front - self.rib_phase, 24) < 9
        return (np.abs(middle) < 4) & band & (p[2] < self.apex_z)

    def _airways(self, p: np.ndarray) -> np.ndarray:
        """Trachea down to the carina and the two main bronchi towards the hila."""
        y = self.spine.centre_y(self.carina_z) + 40
        carina = np.array([0.0, y, self.carina_z])
        inside = segment_distance(p, np.array([0.0, y, self.apex_z + 60]), carina)[0] < 8
        for side in (1.0, -1.0):
            inside |= segment_distance(p, carina, np.array([side * 38, y - 5, self.carina_z - 25]))[0] < 6
        return inside

    def _vessel_fraction(self, p: np.ndarray, sigma_mm: float) -> np.ndarray:
        """Fraction of a voxel around each point (3, n) filled by vessel: a tube blurred by a Gaussian PSF."""
        centre, radius = self._centreline
        if not len(radius):
            return np.zeros(p.shape[1])
        reach = radius.max() + 3 * sigma_mm
        distance, index = self._tree.query(p.T, k=2, distance_upper_bound=reach)
        found = np.isfinite(distance)
        r = radius[np.where(found, index, 0)]
        fraction = 0.5 * special.erfc((distance - r) / (np.sqrt(2) * sigma_mm))
        return np.where(found, fraction, 0.0).max(axis=1)

    @cached_property
    def _centreline(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vessels.centreline(0.5)

    @cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self._centreline[0])


@dataclass(frozen=True)
class Breathing:
    """The breathing motion of the ``settings.breathing`` YAML block; ranges are drawn per subject (mm).

    Attributes:
        diaphragm_mm: cranio-caudal excursion of the diaphragm domes.
        anterior_mm: antero-posterior excursion of the front of the chest.
        lateral_mm: lateral excursion of the chest's sides.
        outside: the fraction of the cranio-caudal motion that chest wall and spine follow.
        sliding_vox: width of the blend across the pleura, in voxels of the velocity grid.
        rms_mm, cell_mm: a smooth random velocity added everywhere (``RandomField``).
    """

    diaphragm_mm: tuple[float, float]
    anterior_mm: tuple[float, float]
    lateral_mm: tuple[float, float]
    outside: float
    sliding_vox: float
    rms_mm: float
    cell_mm: float

    def draw(self, rng: np.random.Generator, thorax: Thorax, velocity_grid: Grid) -> BreathingMotion:
        return BreathingMotion(
            thorax, diaphragm_mm=rng.uniform(*self.diaphragm_mm), anterior_mm=rng.uniform(*self.anterior_mm),
            lateral_mm=rng.uniform(*self.lateral_mm), outside=self.outside,
            sliding_mm=self.sliding_vox * float(np.mean(velocity_grid.spacing)), rms_mm=self.rms_mm,
            field=RandomField.draw(rng, velocity_grid.extent_mm, cell_mm=self.cell_mm, channels=3),
        )


@dataclass(frozen=True)
class BreathingMotion:
    """One subject's breathing velocity, from expiration positions to inspiration ones, at any point (mm)."""

    thorax: Thorax
    diaphragm_mm: float
    anterior_mm: float
    lateral_mm: float
    outside: float
    sliding_mm: float
    rms_mm: float
    field: RandomField

    def velocity_mm(self, p: np.ndarray) -> np.ndarray:
        """v (3, ...) at points (3, ...): see the module docstring for its parts."""
        return self._breathing_mm(p) + self.rms_mm * self.field(p)

    def velocity_on_grid(self, grid: Grid) -> np.ndarray:
        """v (3, *grid.shape) at the voxel centres, in voxels: ``velocity_mm`` there, evaluated faster."""
        return grid.to_voxels(self._breathing_mm(grid.points_mm()) + self.rms_mm * self.field.on_grid(grid))

    def _breathing_mm(self, p: np.ndarray) -> np.ndarray:
        thorax = self.thorax
        dome_top = max(thorax.dome_right, thorax.dome_left)
        profile = smoothstep((thorax.apex_z - p[2]) / (thorax.apex_z - dome_top))  # 0 at the apex, 1 at the domes
        inside = 0.5 * (1 - np.tanh(2 * thorax.cavity_level(p) / self.sliding_mm))
        back, front = thorax.spine.centre_y(p[2]), thorax.y0 + thorax.b
        cranio_caudal = -self.diaphragm_mm * profile * (inside + self.outside * (1 - inside))
        antero_posterior = self.anterior_mm * profile * smoothstep((p[1] - back) / (front - back))
        lateral = self.lateral_mm * profile * p[0] / thorax.a
        return np.stack([lateral, antero_posterior, cranio_caudal])


@dataclass(frozen=True)
class ThoraxSettings:
    """The ``settings`` of a thorax task YAML (tasks/thorax_ct.yaml says what each means)."""

    fov_mm: tuple[float, float, float]
    velocity_coarsening: int
    psf_vox: float
    noise_hu: float
    keypoints: int
    keypoint_radius_mm: float
    breathing: Breathing

    def __post_init__(self) -> None:
        if not isinstance(self.breathing, Breathing):  # a mapping, as read from the YAML
            object.__setattr__(self, "breathing", Breathing(**self.breathing))


def render_ct(thorax: Thorax, points_mm: np.ndarray, rng: np.random.Generator, *, settings: ThoraxSettings,
              grid: Grid, volume_change: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CT image (HU, float32) and structure map of the anatomy at ``points_mm`` (3, *grid.shape).

    ``volume_change`` (inspiration volume over expiration volume, the Jacobian determinant of the map into
    the anatomy) scales the lung parenchyma's density: the same tissue mass in less volume. Posterior lung is
    denser than anterior lung (gravity, supine).
    """
    sigma_mm = settings.psf_vox * float(np.mean(grid.spacing))
    tissue, structure, vessel = thorax.evaluate(points_mm, vessel_sigma_mm=sigma_mm)
    image = np.array(list(TISSUES.values()))[tissue]
    back, front = thorax.spine.centre_y(points_mm[2]), thorax.y0 + thorax.b
    parenchyma = TISSUES["lung"] + 50 * (1 - smoothstep((points_mm[1] - back) / (front - back)))
    if volume_change is not None:
        parenchyma = (parenchyma + 1000) * volume_change - 1000
    lung = tissue == TISSUE_INDEX["lung"]
    image[lung] = ((1 - vessel) * parenchyma + vessel * VESSEL_HU)[lung]
    image = ndimage.gaussian_filter(image, sigma=settings.psf_vox, mode="nearest")
    return synth.add_noise(rng, image, sigma=settings.noise_hu).astype(np.float32), structure


def keypoints(thorax: Thorax, motion: BreathingMotion, grid: Grid, rng: np.random.Generator, *, count: int,
              min_radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Corresponding keypoints (voxel indices, (n, 3)): fixed on vessel centrelines, moving by the flow of -v.

    Fixed keypoints are whole voxels within 0.4 voxel of the centreline of a vessel at least
    ``min_radius_mm`` thick, a voxel or more inside a lung; ``count`` of them at random (fewer if fewer
    qualify). The moving ones integrate dp/dt = -v(p) over unit time (RK4, 16 steps) on the analytic
    velocity; points leaving the field of view are dropped from both lists.
    """
    centre, radius = thorax.vessels.centreline(0.25)
    index = grid.index_of(centre[radius >= min_radius_mm])
    on_line = np.linalg.norm(index - np.rint(index), axis=1) < 0.4
    voxels = np.unique(np.rint(index[on_line]), axis=0)
    margin = float(np.max(grid.spacing))
    voxels = voxels[thorax.in_lung(grid.origin_mm[:, None] + voxels.T * np.asarray(grid.spacing)[:, None],
                                   margin_mm=margin)]
    if not len(voxels):
        raise RegbenchError("thorax: no vessel centreline crosses a voxel centre; use a finer grid")
    voxels = voxels[np.sort(rng.permutation(len(voxels))[:count])]
    moving_mm = _flow(lambda p: -motion.velocity_mm(p), (grid.origin_mm + voxels * np.asarray(grid.spacing)).T)
    moving = grid.index_of(moving_mm.T)
    inside = np.all((moving >= 0) & (moving <= np.asarray(grid.shape) - 1), axis=1)
    return voxels[inside], moving[inside]


def _flow(velocity: Callable[[np.ndarray], np.ndarray], points: np.ndarray, *, steps: int = 16) -> np.ndarray:
    """Positions after unit time along the stationary ``velocity``: classic Runge-Kutta, ``steps`` steps."""
    h = 1.0 / steps
    for _ in range(steps):
        k1 = velocity(points)
        k2 = velocity(points + h / 2 * k1)
        k3 = velocity(points + h / 2 * k2)
        k4 = velocity(points + h * k3)
        points = points + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return points


def generate(spec: TaskSpec, scale: Scale, rng: np.random.Generator) -> SyntheticData:
    """Each subject: anatomy, breathing, inspiration and expiration CT, lung labels and masks, keypoints."""
    settings = spec.settings_as(ThoraxSettings)
    grid = Grid.covering(scale.shape, settings.fov_mm)
    factor = settings.velocity_coarsening
    velocity_grid = grid.coarsened(factor)
    cohort = Cohort.of(scale, pairing="paired", modalities=tuple(spec.modalities), task=spec.name)
    label_of = label_table(spec, STRUCTURES)
    lungs = np.isin(np.arange(len(STRUCTURES) + 1), [STRUCTURES.index(n) + 1 for n in ("left_lung", "right_lung")])
    cases: dict[CaseId, Case] = {}
    groundtruth: dict[PairId, Displacement] = {}
    evaluated = {p.fixed.case: p for p in cohort.pairs("val") + cohort.pairs("test")}
    for subject in cohort.subjects:
        thorax = Thorax.draw(rng)
        motion = settings.breathing.draw(rng, thorax, velocity_grid)
        velocity = motion.velocity_on_grid(velocity_grid)
        disp = upsample_disp(synth.exp_velocity(velocity), factor)
        volume_change = jacobian_det(torch.from_numpy(disp)[None])[0].numpy()
        image_rng, keypoint_rng = rng.spawn(2)  # grid-dependent draws: every scale keeps the same subjects
        fixed_kp, moving_kp = keypoints(thorax, motion, grid, keypoint_rng, count=settings.keypoints,
                                        min_radius_mm=settings.keypoint_radius_mm)
        for case, points, change, kp in zip(cohort.cases(subject), (grid.points_mm(), grid.points_mm(disp)),
                                            (None, volume_change), (fixed_kp, moving_kp)):
            image, structure = render_ct(thorax, points, image_rng, settings=settings, grid=grid,
                                         volume_change=change)
            cases[case] = Case(case, Image(image, grid.affine), LabelMap(label_of[structure], grid.affine),
                               LabelMap(lungs[structure].astype(np.uint8), grid.affine), kp, modality="CT")
        if subject in evaluated:
            truth = upsample_disp(synth.exp_velocity(-velocity), factor)
            groundtruth[evaluated[subject]] = Displacement(np.moveaxis(truth, 0, -1).astype(np.float32))
    return SyntheticData(cases, cohort.training_cases, cohort.test_cases, cohort.pairs("val"), cohort.pairs("test"),
                         groundtruth, cohort.pairing)
