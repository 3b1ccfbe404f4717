"""``cardiac_mr``: end-diastole and end-systole of one short-axis cine MR slice (2D), ACDC-like.

Each subject is an analytic mid-ventricular slice with random shape: the left ventricle (bright blood pool
with two papillary muscles, dark myocardial ring whose radii vary with angle), the right ventricle (a bright
crescent wrapped around the septum, thin dark free wall), epicardial fat, and around them lungs, liver,
descending aorta, a vertebra and the anterior chest wall with subcutaneous fat. Intensities follow balanced
SSFP cine contrast (blood bright, myocardium dark), with per-subject tissue contrast, a coil bias field shared
by both frames, and Rician noise. Edges are anti-aliased by a one-voxel ramp of each shape's signed distance,
labels are exact: 1 LV cavity (papillary muscles included, as in ACDC), 2 LV myocardium, 3 RV cavity.

Motion: end-diastole ``_0000`` is the fixed image, end-systole ``_0001`` the moving one. The ES frame shows the
ED anatomy at ``y + exp(v)(y)``, where the stationary velocity v (end-systole to end-diastole, ``Contraction``)
expands the heart about the LV centre (contraction seen backwards: the cavity ejects a drawn fraction of its
area while the myocardium keeps its area, so the wall thickens), moves the RV free wall away from the septum,
and rotates the heart by an angle that fades with the distance from the LV centre (twist). The motion fades
to rest a few centimetres beyond the heart, so lungs, liver and chest wall stay put as in a breath-hold cine.
Both frames evaluate the analytic anatomy at their own sample points, so neither is resampled from the other;
the true displacement is ``exp(-v)`` (``synth.inter_subject_groundtruth(0, v)``).

Coordinates are mm from the centre of the field of view, in the RAS sense of the affine: axis 0 points to the
patient's right, axis 1 anterior. Angles about the LV centre count from axis 0 towards axis 1: the RV lies at
about 20 degrees (right and in front of the LV), the lateral LV wall at 180.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId, PairId
from regbench.tasks import synth
from regbench.tasks.cohort import Cohort
from regbench.tasks.generate import SyntheticData
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import Scale, TaskSpec

LABELS = {1: "LV cavity", 2: "LV myocardium", 3: "RV cavity"}
RV_WALL_MM = 3.0
GATE_MM = 3.0  # half the width of the smooth step that confines the RV motion to outside the LV
PAPILLARY_DEGREES = (135.0, -60.0)  # anterolateral and posteromedial muscles (angles as in the module docstring)


@dataclass(frozen=True)
class CardiacSettings:
    """Generator settings (``settings:`` in ``cardiac_mr.yaml``); ranges are [low, high] of uniform draws.

    Attributes:
        field_of_view_mm: extent of the image along each array axis, centred on the heart.
        lv_radius_mm: end-diastolic LV cavity radius.
        wall_mm: end-diastolic myocardial thickness.
        ejection_fraction: fraction of the end-diastolic LV cavity area that systole ejects (in-plane).
        twist_degrees: largest rotation at the LV centre, either direction.
        contrast: relative spread of each tissue's intensity between subjects.
        bias_strength: the coil bias field lies in exp([-strength, strength]).
        noise: standard deviation of the Rician noise, relative to blood.
    """

    field_of_view_mm: tuple[float, float]
    lv_radius_mm: tuple[float, float]
    wall_mm: tuple[float, float]
    ejection_fraction: tuple[float, float]
    twist_degrees: float
    contrast: float
    bias_strength: float
    noise: float


TISSUE = {  # balanced SSFP cine intensities relative to blood
    "muscle": 0.22, "fat": 0.85, "lung": 0.06, "liver": 0.36, "bone": 0.45, "cortex": 0.12,
    "blood": 1.0, "myocardium": 0.27,
}


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in the slice: centre (mm), semi-axes (mm) and the angle (radians) of the first axis."""

    centre: tuple[float, float]
    semi_axes: tuple[float, float]
    angle: float = 0.0

    def level(self, points: np.ndarray) -> np.ndarray:
        """Signed distance along the ray from the centre (mm): negative inside, exact on every ray's crossing."""
        offset = points - np.reshape(self.centre, (2, *([1] * (points.ndim - 1))))
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        along, across = cos * offset[0] + sin * offset[1], -sin * offset[0] + cos * offset[1]
        radius = np.hypot(along / self.semi_axes[0], across / self.semi_axes[1])  # 1 on the ellipse
        ray = np.divide(np.hypot(along, across), radius, out=np.full(radius.shape, min(self.semi_axes)),
                        where=radius > 0)  # centre-to-boundary length along each point's ray
        return (radius - 1) * ray


@dataclass(frozen=True)
class Heart:
    """One subject's end-diastolic anatomy.

    Attributes:
        centre: LV centre (mm).
        endo, epi: Fourier coefficients of the endo- and epicardial radius over the angle about the centre:
            ``r(theta) = c0 + sum_k a_k cos(k theta) + b_k sin(k theta)``, as (c0, a1, b1, a2, b2, ...).
        papillary: (2, 3) centre (mm) and radius of each papillary muscle.
        rv_angle, rv_span, rv_depth: the RV cavity is a crescent on the epicardium centred at angle
            ``rv_angle`` (radians), reaching ``rv_span`` radians to either side, ``rv_depth`` mm deep in the
            middle and tapering to the insertion points; its free wall is a ``RV_WALL_MM`` shell.
        fat_angle: direction (radians) where the epicardial fat is thickest.
        thorax: body, lungs, liver, aorta and vertebra.
        tissue: this subject's intensity of each tissue.
    """

    centre: np.ndarray
    endo: np.ndarray
    epi: np.ndarray
    papillary: np.ndarray
    rv_angle: float
    rv_span: float
    rv_depth: float
    fat_angle: float
    thorax: dict[str, Ellipse]
    tissue: dict[str, float]

    @classmethod
    def draw(cls, rng: np.random.Generator, settings: CardiacSettings,
             sized: Callable[[float, float], tuple[float, float]] | None = None) -> Heart:
        """A heart with random size, shape, position and contrast, and a thorax that varies a little.
        ``sized`` maps the drawn (cavity radius, wall thickness) to the subject's, as its covariates shape
        them (``cardiac_population``); the random draws are the same with or without it."""
        centre = np.array([-12.0, 0.0]) + rng.uniform(-4, 4, 2)  # the LV left of centre, so the RV fits right
        endo_mean, wall = rng.uniform(*settings.lv_radius_mm), rng.uniform(*settings.wall_mm)
        if sized is not None:
            endo_mean, wall = sized(endo_mean, wall)
        endo = np.concatenate([[endo_mean], endo_mean * rng.uniform(-0.05, 0.05, 4)])
        epi = np.concatenate([[endo_mean + wall], endo[1:] + wall * rng.uniform(-0.12, 0.12, 4)])
        papillary = []
        for degrees in PAPILLARY_DEGREES:  # each muscle sits against the wall, a little sunk into it
            theta = np.deg2rad(degrees + rng.uniform(-15, 15))
            radius = rng.uniform(2.5, 4.0)
            distance = _fourier(endo, np.array(theta)) - 0.6 * radius
            papillary.append([*(centre + distance * np.array([np.cos(theta), np.sin(theta)])), radius])
        rv_angle = np.deg2rad(rng.uniform(5, 35))
        rv_span, rv_depth = np.deg2rad(rng.uniform(55, 75)), rng.uniform(14, 22)
        thorax = {
            "body": Ellipse((0.0, -45 + rng.uniform(-5, 5)), (170.0, 110 + rng.uniform(-5, 5))),
            "right lung": Ellipse((78 + rng.uniform(-5, 5), -15.0), (38.0, 62 + rng.uniform(-5, 5))),
            "left lung": Ellipse((-88 + rng.uniform(-5, 5), -20.0), (36.0, 58 + rng.uniform(-5, 5))),
            "liver": Ellipse((75 + rng.uniform(-8, 8), -80.0), (60.0, 42.0), np.deg2rad(rng.uniform(-35, -15))),
            "aorta": Ellipse((-28 + rng.uniform(-4, 4), -62 + rng.uniform(-4, 4)), (11.0, 11.0)),
            "vertebra": Ellipse((0.0, -86 + rng.uniform(-4, 4)), (17.0, 14.0)),
        }
        tissue = {name: value * rng.uniform(1 - settings.contrast, 1 + settings.contrast)
                  for name, value in TISSUE.items()}
        fat_angle = rng.uniform(-np.pi, np.pi)
        return cls(centre, endo, epi, np.array(papillary), float(rv_angle), float(rv_span), float(rv_depth),
                   float(fat_angle), thorax, tissue)

    def _polar(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offset = points - self.centre.reshape(2, *([1] * (points.ndim - 1)))
        return np.hypot(offset[0], offset[1]), np.arctan2(offset[1], offset[0])

    def levels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed distances (mm, negative inside) of the LV cavity, the epicardium and the RV cavity at points
        (2, ...) in mm: the labels' shapes (``label_map``)."""
        radius, theta = self._polar(points)
        endo = radius - _fourier(self.endo, theta)
        epi = radius - _fourier(self.epi, theta)
        off_centre = (theta - self.rv_angle + np.pi) % (2 * np.pi) - np.pi
        rv_depth = self.rv_depth * np.sqrt(np.clip(1 - (off_centre / self.rv_span) ** 2, 0.0, None))
        rv_cavity = np.maximum.reduce([-epi, epi - rv_depth, radius * (np.abs(off_centre) - self.rv_span)])
        return endo, epi, rv_cavity

    def render(self, points: np.ndarray, ramp_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Intensity and labels at points (2, ...) in mm; edges ramp over ``ramp_mm`` (one voxel)."""
        radius, theta = self._polar(points)
        endo, epi, rv_cavity = self.levels(points)
        heart = np.minimum(epi, rv_cavity - RV_WALL_MM)
        papillary = np.min([np.hypot(*(points - p[:2].reshape(2, *([1] * (points.ndim - 1))))) - p[2]
                            for p in self.papillary], axis=0)
        fat_width = 1.0 + 2.5 * (1 + np.cos(theta - self.fat_angle))
        body = self.thorax["body"].level(points)
        layers = [
            (body, "muscle"),
            (np.maximum(body, -10.0 - body), "fat"),  # the outer 10 mm of the body: subcutaneous fat
            (np.maximum(self.thorax["right lung"].level(points), 8.0 - heart), "lung"),
            (np.maximum(self.thorax["left lung"].level(points), 8.0 - heart), "lung"),
            (self.thorax["liver"].level(points), "liver"),
            (self.thorax["vertebra"].level(points), "cortex"),
            (self.thorax["vertebra"].level(points) + 2.0, "bone"),
            (self.thorax["aorta"].level(points), "blood"),
            (heart - fat_width, "fat"),
            (heart, "myocardium"),
            (rv_cavity, "blood"),
            (endo, "blood"),
            (np.maximum(papillary, endo), "myocardium"),
        ]
        image = np.zeros(radius.shape)
        for level, tissue in layers:
            cover = np.clip(0.5 - level / ramp_mm, 0.0, 1.0)
            image += cover * (self.tissue[tissue] - image)
        return image, label_map(endo, epi, rv_cavity)


def label_map(endo: np.ndarray, epi: np.ndarray, rv_cavity: np.ndarray) -> np.ndarray:
    """The labels (``LABELS``) where the cavity's, the epicardium's and the RV cavity's levels are negative."""
    labels = np.zeros(endo.shape, np.uint8)
    labels[rv_cavity < 0] = 3
    labels[epi < 0] = 2
    labels[endo < 0] = 1
    return labels


@dataclass(frozen=True)
class Contraction:
    """The stationary velocity (mm) taking end-systolic positions to end-diastolic ones.

    ``v(p) = taper (strength h(|r| / core) r + twist J r) + gate e^(-q_rv) rv_strength r_rv``, with r the offset
    from the LV centre, ``h(x) = (1 + x^8)^(-1/4)``, J the quarter turn and ``taper = e^(-(|r| / reach)^8)``;
    r_rv and ``q_rv = (|r_rv| / rv_reach)^4`` about the RV's pivot, the middle of the septum's RV surface; and
    ``gate`` a smooth step from 0 at the mean epicardial radius ``epicardium`` to 1 at ``2 GATE_MM`` beyond it.

    The first term expands the core uniformly (h = 1); beyond 1.3 core, where h is within 3 % of 1/x^2, it is
    ``strength core^2 r / |r|^2``, which has no divergence: the myocardium keeps its area, and every circle in
    it gains the same area ``2 pi strength core^2`` from systole to diastole. That is the area the cavity
    ejects, so ``strength`` follows from the ejection fraction; with the wall's area conserved, the wall
    thickens in systole as in a real heart. The rotation turns the centre by ``twist`` radians, less outwards;
    the taper brings all of it to rest a few centimetres beyond the heart. The gated RV term moves the free
    wall towards the septum and leaves the LV alone.
    """

    centre: np.ndarray
    core: float
    strength: float
    twist: float
    reach: float
    epicardium: float
    rv_pivot: np.ndarray
    rv_reach: float
    rv_strength: float

    @classmethod
    def draw(cls, rng: np.random.Generator, heart: Heart, settings: CardiacSettings,
             shifted: Callable[[float], float] | None = None) -> Contraction:
        """A motion ejecting a fraction drawn from ``settings.ejection_fraction`` of the ED cavity's area
        (moved by ``shifted``, as the subject's covariates move it, where given)."""
        ejected = rng.uniform(*settings.ejection_fraction)
        if shifted is not None:
            ejected = shifted(ejected)
        twist = np.deg2rad(rng.uniform(-settings.twist_degrees, settings.twist_degrees))
        core = heart.endo[0] / 2  # inside the end-systolic cavity, whose radius is sqrt(1 - ejected) R >= 0.59 R
        strength = ejected * heart.endo[0] ** 2 / (2 * core**2)  # pi * ejected * R^2 = 2 pi strength core^2
        pivot = heart.centre + heart.epi[0] * np.array([np.cos(heart.rv_angle), np.sin(heart.rv_angle)])
        insertion = 2 * heart.epi[0] * np.sin(heart.rv_span / 2)  # from the septum's middle to either tip
        rv_strength = rng.uniform(0.7, 1.0)  # the RV then ejects 35 to 60 % of its area
        return cls(heart.centre, core, strength, float(twist), 1.6 * heart.epi[0], heart.epi[0], pivot,
                   0.8 * max(insertion, heart.rv_depth), rv_strength)

    def velocity(self, points: np.ndarray) -> np.ndarray:
        """Velocity (2, ...) in mm at points (2, ...) in mm."""
        column = (2, *([1] * (points.ndim - 1)))
        offset = points - self.centre.reshape(column)
        radius = np.hypot(*offset)
        taper = np.exp(-(radius / self.reach) ** 8)
        source = self.strength * (1 + (radius / self.core) ** 8) ** -0.25
        turned = np.stack([-offset[1], offset[0]])
        rv_offset = points - self.rv_pivot.reshape(column)
        rv_fade = np.exp(-(np.hypot(*rv_offset) / self.rv_reach) ** 4)
        step = np.clip((radius - self.epicardium) / (2 * GATE_MM), 0.0, 1.0)
        gate = step**2 * (3 - 2 * step)
        return taper * (source * offset + self.twist * turned) + gate * rv_fade * self.rv_strength * rv_offset


def _fourier(coefficients: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``c0 + sum_k a_k cos(k theta) + b_k sin(k theta)`` for coefficients (c0, a1, b1, a2, b2, ...)."""
    value = np.full(np.shape(theta), coefficients[0], dtype=np.float64)
    for k in range(1, (len(coefficients) - 1) // 2 + 1):
        value += coefficients[2 * k - 1] * np.cos(k * theta) + coefficients[2 * k] * np.sin(k * theta)
    return value


def generate(spec: TaskSpec, scale: Scale, rng: np.random.Generator) -> SyntheticData:
    """Draw the subjects of ``scale``: their ED and ES frames, and the true displacement of every pair.

    Each subject draws from its own child of ``rng``, anatomy and motion first: with one seed, subject s has
    the same heart at every scale.
    """
    if spec.labels != LABELS:
        raise DatasetError(spec.path or spec.name, f"labels must be those cardiac.py draws: {LABELS}")
    settings = spec.settings_as(CardiacSettings)
    grid = Grid.covering(scale.shape, tuple(settings.field_of_view_mm))
    ramp = float(np.mean(grid.spacing))
    cohort = Cohort.of(scale, pairing="paired", modalities=tuple(spec.modalities), task=spec.name)

    cases: dict[CaseId, Case] = {}
    groundtruth = {}
    points = grid.points_mm()
    for subject, subject_rng in zip(cohort.subjects, rng.spawn(len(cohort.subjects))):
        heart = Heart.draw(subject_rng, settings)
        velocity = grid.to_voxels(Contraction.draw(subject_rng, heart, settings).velocity(points))
        bias = synth.bias_field(subject_rng, grid.shape, strength=settings.bias_strength)
        diastole, systole = cohort.cases(subject)
        for case_id, at in ((diastole, points), (systole, grid.points_mm(synth.exp_velocity(velocity)))):
            intensity, labels = heart.render(at, ramp)
            image = synth.rician_noise(subject_rng, bias * intensity, sigma=settings.noise).astype(np.float32)
            cases[case_id] = Case(case_id, Image(image, grid.affine), LabelMap(labels, grid.affine))
        if subject not in cohort.training:
            field = synth.inter_subject_groundtruth(np.zeros_like(velocity), velocity)
            groundtruth[PairId(diastole, systole)] = Displacement(np.moveaxis(field, 0, -1).astype(np.float32))
    return SyntheticData(cases, cohort.training_cases, cohort.test_cases, cohort.pairs("val"),
                         cohort.pairs("test"), groundtruth, cohort.pairing)
