"""Synthetic abdominal CT and MR (tasks ``abdomen_ct`` and ``abdomen_mrct``): one organ phantom per task.

The task draws a template once: a body with a fat layer and muscle wall, liver, gallbladder, spleen, stomach,
kidneys, pancreas, aorta, vena cava, psoas and back muscles, a vertebral column and bowel loops with gas below
the diaphragm, lung bases above it. Every shape is analytic (``tasks/phantom.py``), so an image evaluates the
template directly at its sampling points, ``x + exp(v)(x)``, with one stationary velocity ``v`` per image:

- ``pairing: unpaired`` (abdomen_ct): one image per subject, ``v`` = the subject's anatomy (a smooth random
  velocity plus a linear one whose exponential is a random affine). The true field of a pair is
  ``synth.inter_subject_groundtruth(v_fixed, v_moving)``.
- ``pairing: paired`` (abdomen_mrct): each subject is imaged twice (modality 0, then 1), ``v`` = the subject's
  anatomy plus a motion of its own (positioning and organ motion between the two sessions), so the two images
  of a pair differ by a real non-rigid motion and by their contrast.

Intensities come from a per-tissue table: CT in Hounsfield units (portal-venous phase), MR as a T1-weighted
gradient echo in arbitrary units, whose tissue order differs from CT's (fat and marrow bright, bone cortex,
fluid and flowing blood dark), so no monotone map relates the two. Each image jitters the table a little,
is blurred by the scanner's point-spread function and gets noise (Gaussian for CT, Rician and a smooth bias
field for MR). Labels are sampled at the same points, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy import ndimage

from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId
from regbench.tasks import synth
from regbench.tasks.cohort import Cohort
from regbench.tasks.generate import SyntheticData
from regbench.tasks.phantom import (Blob, Canvas, Grid, RandomField, Spine, ellipse_level, label_table,
                                    rotation_matrix, segment_distance, upsample_disp)
from regbench.tasks.spec import Scale, TaskSpec

# tissue: (CT in HU, T1-weighted MR in arbitrary units)
TISSUES: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "lung": (-850.0, 15.0),
    "gas": (-900.0, 10.0),
    "fat": (-100.0, 900.0),
    "muscle": (50.0, 250.0),
    "bowel": (30.0, 380.0),
    "liver": (60.0, 520.0),
    "spleen": (45.0, 330.0),
    "kidney": (150.0, 300.0),
    "pancreas": (40.0, 620.0),
    "stomach_wall": (40.0, 300.0),
    "fluid": (10.0, 80.0),
    "arterial_blood": (180.0, 60.0),
    "venous_blood": (120.0, 110.0),
    "cortical_bone": (700.0, 40.0),
    "marrow": (250.0, 560.0),
    "disc": (80.0, 200.0),
    "csf": (10.0, 70.0),
}
TISSUE_INDEX = {name: i for i, name in enumerate(TISSUES)}
MODALITY_COLUMN = {"CT": 0, "MR": 1}
T = TypeVar("T")
# anatomical structures a label map can show (YAML labels name them), index 0 is background
STRUCTURES = ("liver", "spleen", "right_kidney", "left_kidney", "stomach", "gallbladder", "pancreas", "aorta",
              "inferior_vena_cava", "spine")


@dataclass(frozen=True)
class Variation:
    """A random smooth velocity in mm: a B-spline field plus a linear field that integrates to an affine.

    Attributes:
        rms_mm: root-mean-square of each velocity component.
        cell_mm: B-spline lattice spacing, the correlation length of the non-rigid part.
        rotation_deg: largest rotation about each axis.
        scaling: largest relative change of size along each axis.
        translation_mm: largest shift along each axis.
    """

    rms_mm: float
    cell_mm: float
    rotation_deg: float = 0.0
    scaling: float = 0.0
    translation_mm: float = 0.0

    def velocity_mm(self, rng: np.random.Generator, grid: Grid) -> np.ndarray:
        """A velocity (3, *grid.shape) in mm at the voxel centres.

        The affine part is a linear velocity ``L x + t`` about the grid centre, L = rotation generator
        (skew-symmetric, angles in radians) + log scaling; its exponential is an affine with about that rotation,
        scaling and shift. The draws depend only on the field of view, not on the grid's resolution.
        """
        field = RandomField.draw(rng, grid.extent_mm, cell_mm=self.cell_mm, channels=3)
        w = np.radians(rng.uniform(-self.rotation_deg, self.rotation_deg, 3))
        generator = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
        generator += np.diag(np.log1p(rng.uniform(-self.scaling, self.scaling, 3)))
        shift = rng.uniform(-self.translation_mm, self.translation_mm, 3)
        linear = np.tensordot(generator, grid.points_mm(), axes=1) + shift.reshape(3, 1, 1, 1)
        return self.rms_mm * field.on_grid(grid) + linear


@dataclass(frozen=True)
class Contrast:
    """How one modality renders the tissue map (``settings.contrast.<modality>`` in the YAML).

    Attributes:
        noise: standard deviation of the noise, in image units (HU for CT).
        jitter: per-image standard deviation of each tissue's intensity (CT: HU added; MR: relative factor).
        bias: strength of the smooth multiplicative bias field (0: none).
    """

    noise: float
    jitter: float
    bias: float

    def render(self, tissue: np.ndarray, rng: np.random.Generator, *, modality: str, psf_vox: float) -> np.ndarray:
        """Intensities of a tissue index map: jittered table, point-spread blur, bias field, noise.

        CT noise is Gaussian; MR is a magnitude image, so its noise is Rician and it is never negative.
        """
        column = MODALITY_COLUMN[modality]
        table = np.array([values[column] for values in TISSUES.values()])
        if modality == "MR":
            table = table * (1 + self.jitter * rng.standard_normal(table.shape))
        else:
            table = table + self.jitter * rng.standard_normal(table.shape)
        table[TISSUE_INDEX["air"]] = TISSUES["air"][column]
        image = ndimage.gaussian_filter(table[tissue], sigma=psf_vox, mode="nearest")
        if self.bias:
            image = image * synth.bias_field(rng, image.shape, strength=self.bias)
        noisy = synth.rician_noise if modality == "MR" else synth.add_noise
        return noisy(rng, image, sigma=self.noise).astype(np.float32)


@dataclass(frozen=True)
class AbdomenSettings:
    """The ``settings`` of an abdomen task YAML (tasks/abdomen_ct.yaml says what each means).

    Nested blocks arrive from the YAML as mappings and become ``Variation`` and ``Contrast`` here.
    """

    fov_mm: tuple[float, float, float]
    velocity_coarsening: int
    pairing: str
    masks: bool
    psf_vox: float
    anatomy: Variation
    contrast: dict[str, Contrast]
    motion: Variation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "anatomy", _as(Variation, self.anatomy))
        object.__setattr__(self, "motion", None if self.motion is None else _as(Variation, self.motion))
        object.__setattr__(self, "contrast", {name: _as(Contrast, c) for name, c in self.contrast.items()})

    def contrast_of(self, modality: str, spec: TaskSpec) -> Contrast:
        """The contrast model of a modality the task YAML names; one without a model is an error."""
        if modality not in MODALITY_COLUMN or modality not in self.contrast:
            raise DatasetError(spec.path or spec.name, f"modality {modality!r} needs a contrast model: the abdomen "
                                                       f"phantom renders {sorted(MODALITY_COLUMN)}, the settings "
                                                       f"give {sorted(self.contrast)}")
        return self.contrast[modality]


def _as(kind: type[T], value: T | dict[str, Any]) -> T:
    """``value`` as the dataclass ``kind``: built from a YAML mapping, kept if it is one already."""
    return value if isinstance(value, kind) else kind(**value)


@dataclass(frozen=True)
class Body:
    """The trunk: an elliptic cross-section (semi-axes a, b in mm, centre y0 on axis 1), the same at every
    height, under a fat layer and a muscle wall of even thickness."""

    a: float
    b: float
    y0: float
    fat_mm: float
    muscle_mm: float

    def layer(self, p: np.ndarray) -> np.ndarray:
        """0 outside the body, 1 in the fat layer, 2 in the muscle wall, 3 inside it."""
        depth = -ellipse_level(p[0], p[1] - self.y0, self.a, self.b)
        return (depth > 0).astype(np.intp) + (depth > self.fat_mm) + (depth > self.inner_mm)

    @property
    def inner_mm(self) -> float:
        return self.fat_mm + self.muscle_mm


@dataclass(frozen=True)
class Tube:
    """A vessel along the body axis: elliptic cross-section (rx, ry) centred at (x, y_offset + spine centre)."""

    x: float
    y_offset: float
    rx: float
    ry: float
    z_top: float

    def contains(self, p: np.ndarray, spine: Spine) -> np.ndarray:
        y = spine.centre_y(p[2]) + self.y_offset
        return (((p[0] - self.x) / self.rx) ** 2 + ((p[1] - y) / self.ry) ** 2 < 1) & (p[2] < self.z_top)


@dataclass(frozen=True)
class AbdomenPhantom:
    """The template anatomy; ``evaluate`` returns tissue and structure indices at any points in mm."""

    body: Body
    spine: Spine
    dome_mm: float
    aorta: Tube
    cava: Tube
    liver: tuple[Blob, Blob]
    gallbladder: Blob
    stomach: Blob
    spleen: Blob
    kidneys: tuple[tuple[Blob, Blob], tuple[Blob, Blob]]
    pancreas: tuple[np.ndarray, np.ndarray]  # centreline nodes (3, 3) and radii (3,), mm
    bowel: RandomField

    @classmethod
    def draw(cls, rng: np.random.Generator, fov_mm: tuple[float, float, float]) -> AbdomenPhantom:
        """A template: organ poses near textbook positions (mm, origin mid-trunk), sizes and shapes random."""
        a, b = rng.uniform(104, 116), rng.uniform(80, 90)
        body = Body(a, b, y0=-4.0, fat_mm=rng.uniform(10, 20), muscle_mm=rng.uniform(8, 12))
        back = body.y0 - b
        spine = Spine(y_body=back + body.fat_mm + 40, tilt=rng.uniform(-0.08, 0.08),  # a third from the back
                      disc_phase=rng.uniform(0, 32))
        kidneys = []
        for side, z in ((1, rng.uniform(-20, -5)), (-1, rng.uniform(0, 15))):  # right kidney lies lower
            angles = (10.0, side * 15.0, side * 35.0)
            kidney = Blob.draw(rng, (side * 58, spine.y_body - 8, z), (30, 21, 55), degrees=angles, bump=0.08)
            medial = kidney.rotation @ np.array([-side * 0.7 * kidney.semi_axes[0], 0.0, 0.0])
            sinus = Blob.draw(rng, tuple(kidney.centre + medial), tuple(kidney.semi_axes * (0.4, 0.3, 0.35)),
                              degrees=angles, bump=0.05, jitter=0.05)
            kidneys.append((kidney, sinus))
        pancreas = np.array([[24.0, 2.0, 8.0], [-2.0, 16.0, 18.0], [-58.0, -12.0, 40.0]])  # head, neck, tail
        return cls(
            body=body, spine=spine, dome_mm=rng.uniform(115, 130),
            aorta=Tube(x=-14 + rng.uniform(-3, 3), y_offset=30, rx=11, ry=11, z_top=np.inf),
            cava=Tube(x=22 + rng.uniform(-3, 3), y_offset=24, rx=12, ry=9, z_top=60),
            liver=(Blob.draw(rng, (48, 10, 72), (56, 62, 64), degrees=(0, 0, 10), bump=0.1),
                   Blob.draw(rng, (-22, 36, 84), (50, 30, 34), degrees=(0, -10, 0), bump=0.1)),
            gallbladder=Blob.draw(rng, (36, 40, 22), (13, 13, 30), degrees=(30, 0, 0), bump=0.05),
            stomach=Blob.draw(rng, (-38, 24, 62), (34, 28, 54), degrees=(0, 30, 10), bump=0.12),
            spleen=Blob.draw(rng, (-66, -32, 70), (22, 44, 50), degrees=(0, 0, -30), bump=0.08),
            kidneys=(kidneys[0], kidneys[1]),
            pancreas=(pancreas + rng.uniform(-6, 6, (3, 3)), rng.uniform(10, 14) * np.array([1.25, 1.0, 0.8])),
            bowel=RandomField.draw(rng, fov_mm, cell_mm=18),
        )

    def diaphragm_z(self, p: np.ndarray) -> np.ndarray:
        """Height of the diaphragm dome above (x, y): highest mid-trunk, the right dome higher than the left."""
        x = p[0] / (self.body.a - self.body.inner_mm)
        y = (p[1] - self.body.y0) / (self.body.b - self.body.inner_mm)
        return self.dome_mm + 6 * np.tanh(p[0] / 30) - 35 * x**2 - 20 * y**2

    def evaluate(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tissue and structure indices at points (3, ...) in mm, each of the points' trailing shape."""
        shape = points_mm.shape[1:]
        canvas = Canvas(points_mm, tuple(TISSUES), STRUCTURES)
        layer = self.body.layer(canvas.open)
        canvas.paint(layer == 0, "air")
        layer = layer[layer > 0]
        canvas.paint(layer == 1, "fat")
        canvas.paint(layer[layer > 1] == 2, "muscle")
        self.spine.paint(canvas)
        canvas.paint(self.aorta.contains(canvas.open, self.spine), "arterial_blood", "aorta")
        canvas.paint(self.cava.contains(canvas.open, self.spine), "venous_blood", "inferior_vena_cava")
        dome = self.diaphragm_z(canvas.open)
        canvas.paint(canvas.open[2] > dome, "lung")
        canvas.paint(canvas.open[2] > self.diaphragm_z(canvas.open) - 5, "muscle")
        canvas.paint(self._back_muscles(canvas.open), "muscle")
        canvas.paint(self.gallbladder.contains(canvas.open), "fluid", "gallbladder")
        canvas.paint(self.liver[0].contains(canvas.open) | self.liver[1].contains(canvas.open), "liver", "liver")
        self._paint_stomach(canvas)
        canvas.paint(self.spleen.contains(canvas.open), "spleen", "spleen")
        for (kidney, sinus), name in zip(self.kidneys, ("right_kidney", "left_kidney")):
            canvas.paint(sinus.contains(canvas.open) & kidney.contains(canvas.open), "fat")
            canvas.paint(kidney.contains(canvas.open), "kidney", name)
        canvas.paint(self._pancreas(canvas.open), "pancreas", "pancreas")
        texture = self.bowel(canvas.open)[0]
        canvas.paint(texture > 1.8, "gas")
        canvas.paint(texture[texture <= 1.8] > -0.3, "bowel")
        canvas.fill("fat")
        return canvas.tissue.reshape(shape), canvas.structure.reshape(shape)

    def _paint_stomach(self, canvas: Canvas) -> None:
        level = self.stomach.level(canvas.open)
        inside = level < 0
        wall = 4.0 / self.stomach.semi_axes.mean()
        gas_line = self.stomach.centre[1] + 0.35 * self.stomach.semi_axes[1]
        canvas.paint(inside & (level > -wall), "stomach_wall", "stomach")
        p = canvas.open
        level = self.stomach.level(p)
        canvas.paint((level < 0) & (p[1] > gas_line), "gas", "stomach")
        canvas.paint(self.stomach.contains(canvas.open), "fluid", "stomach")

    def _pancreas(self, p: np.ndarray) -> np.ndarray:
        nodes, radii = self.pancreas
        inside = np.zeros(p.shape[1], dtype=bool)
        for i in range(len(nodes) - 1):
            distance, t = segment_distance(p, nodes[i], nodes[i + 1])
            inside |= distance < (1 - t) * radii[i] + t * radii[i + 1]
        return inside

    def _back_muscles(self, p: np.ndarray) -> np.ndarray:
        """Erector spinae beside the spinous processes, psoas beside the lumbar vertebral bodies."""
        y_spine = self.spine.centre_y(p[2])
        erector = ((np.abs(p[0]) - 30) / 26) ** 2 + ((p[1] - y_spine + 36) / 24) ** 2 < 1
        below = np.clip(30 - p[2], 0, None)
        psoas_radius = np.minimum(4 + 0.15 * below, 24)
        psoas = (np.hypot(np.abs(p[0]) - 26 - 0.2 * below, p[1] - y_spine - 4) < psoas_radius) & (below > 0)
        return erector | psoas


def generate(spec: TaskSpec, scale: Scale, rng: np.random.Generator) -> SyntheticData:
    """Draw the template, then every subject's images, labels (and masks) and the true field of every pair."""
    settings = spec.settings_as(AbdomenSettings)
    contrasts = {index: settings.contrast_of(name, spec) for index, name in spec.modalities.items()}
    grid = Grid.covering(scale.shape, settings.fov_mm)
    cohort = Cohort.of(scale, pairing=settings.pairing, modalities=tuple(spec.modalities), task=spec.name)
    label_of = label_table(spec, STRUCTURES)
    phantom = AbdomenPhantom.draw(rng, settings.fov_mm)
    factor = settings.velocity_coarsening
    coarse = grid.coarsened(factor)
    cases: dict[CaseId, Case] = {}
    velocities: dict[CaseId, np.ndarray] = {}
    for subject in cohort.subjects:
        anatomy = settings.anatomy.velocity_mm(rng, coarse)
        for case in cohort.cases(subject):
            motion = settings.motion.velocity_mm(rng, coarse) if settings.motion else 0.0
            velocities[case] = coarse.to_voxels(anatomy + motion)
            disp = upsample_disp(synth.exp_velocity(velocities[case]), factor)
            tissue, structure = phantom.evaluate(grid.points_mm(disp))
            modality = spec.modalities[case.modality]
            # noise draws depend on the grid: a child generator keeps them from shifting the anatomy's draws,
            # so every scale of a seed shows the same subjects
            image = contrasts[case.modality].render(tissue, rng.spawn(1)[0], modality=modality,
                                                    psf_vox=settings.psf_vox)
            mask = LabelMap((tissue != TISSUE_INDEX["air"]).astype(np.uint8), grid.affine) if settings.masks \
                else None
            cases[case] = Case(case, Image(image, grid.affine), LabelMap(label_of[structure], grid.affine), mask,
                               modality=modality)
    val, test = cohort.pairs("val"), cohort.pairs("test")
    groundtruth = {}
    for pair in val + test:
        truth = upsample_disp(synth.inter_subject_groundtruth(velocities[pair.fixed], velocities[pair.moving]), factor)
        groundtruth[pair] = Displacement(np.moveaxis(truth, 0, -1).astype(np.float32))
    return SyntheticData(cases, cohort.training_cases, cohort.test_cases, val, test, groundtruth, cohort.pairing)
