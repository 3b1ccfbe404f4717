"""``brain_mr``: inter-subject T1 MR made from the ICBM152 2009a template that the nilearn wheel ships.

Template: the symmetric ICBM152 2009a T1 and its grey- and white-matter probability maps (197x233x189 voxels,
1 mm, MNI space, skull-stripped), read from nilearn's package data; nothing is downloaded. Thirteen regions
are derived from them once, at 1 mm (``parcellate``).

Subjects: subject s shows the template at ``phi_s(x) = x + exp(v_s)(x)`` for every voxel x of the task grid,
with v_s a smooth random stationary velocity field. Its image samples the template T1 (blurred to the task's
voxel size) linearly at ``phi_s``, its labels sample the 1 mm label volume nearest (the brain mask is where
any label is): each subject is drawn once from the template, never resampled from another subject.
Intensities then vary per subject (gain, gamma), a bias field multiplies them and Rician noise is added.
Velocities and bias fields live on a 5 mm control grid (``FieldResampler``). The true displacement of a pair
is ``exp(v_fixed) o exp(-v_moving)`` (``synth.inter_subject_groundtruth``). Pairs chain consecutive subjects,
as in Learn2Reg's OASIS task.

Why the regions are compartments rather than tissue classes: the official evaluation warps labels nearest
neighbour, which moves every boundary by up to half a voxel even under the true field. On the default 2.5 mm
grid a 3 mm cortical ribbon would score Dice 0.6 against perfect registration, so each label is a few voxels
thick: the cortical mantle of a lobe (grey matter, sulcal CSF and gyral white matter down to the smoothed
white-matter core), the white-matter core, deep grey matter, ventricles, cerebellum and brainstem. A 7 mm
majority filter removes the remaining sub-voxel detail. Even so the true field scores mean Dice about 0.915
on the default 2.5 mm grid (ventricles 0.85, deep grey matter 0.88): that is the ceiling of this task at the
default scale (0.96 at 1 mm), against about 0.7 before registration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import nibabel as nib
import numpy as np
from scipy import ndimage

from regbench.displacement import Displacement
from regbench.errors import DatasetError, RegbenchError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId
from regbench.tasks import synth
from regbench.tasks.cohort import Cohort
from regbench.tasks.generate import SyntheticData
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import Scale, TaskSpec

LABELS = {
    1: "left frontal cortex", 2: "right frontal cortex",
    3: "left parieto-occipital cortex", 4: "right parieto-occipital cortex",
    5: "left temporal cortex", 6: "right temporal cortex",
    7: "left cerebral white matter", 8: "right cerebral white matter",
    9: "left deep grey matter", 10: "right deep grey matter",
    11: "ventricles", 12: "cerebellum", 13: "brainstem",
}
TEMPLATE_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
CROP_MARGIN_MM = 10  # kept around the brain so that deformed subjects sample background, not the crop edge
MAJORITY_MM = 7  # width of the majority filter that smooths the parcellation
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))


@dataclass(frozen=True)
class BrainSettings:
    """Generator settings (``settings:`` in ``brain_mr.yaml``).

    Attributes:
        field_of_view_mm: extent of the task grid along each array axis, centred on the brain; the grid of a
            scale divides it into that scale's shape.
        control_spacing_mm: voxel size of the grid on which velocities are integrated and bias fields drawn.
        velocity_amplitude_mm: largest velocity component of a subject's deformation.
        velocity_smoothness_mm: standard deviation of the Gaussian that smooths the velocity noise.
        gain: range of the uniform factor scaling a subject's intensities.
        gamma: range of the exponent applied to the template intensities (drawn log-uniformly).
        bias_strength: the bias field lies in exp([-strength, strength]).
        noise: standard deviation of the Rician noise, relative to the template's maximum intensity.
    """

    field_of_view_mm: tuple[float, float, float]
    control_spacing_mm: float
    velocity_amplitude_mm: float
    velocity_smoothness_mm: float
    gain: tuple[float, float]
    gamma: tuple[float, float]
    bias_strength: float
    noise: float


@dataclass(frozen=True)
class Template:
    """The template at 1 mm, cropped around the brain.

    Attributes:
        t1: T1 intensities scaled to [0, 1].
        labels: the parcellation (``LABELS``), uint8; together the regions fill the closed brain (tissue with
            the sulci and ventricles filled), which is the brain mask.
        affine: voxel to MNI mm.
        centre_mm: MNI position of the centre of the brain's bounding box, where task grids centre.
    """

    t1: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    centre_mm: np.ndarray


def _read_map(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One template map as float32 in [0, 1] (stored as uint8 0..255) and its affine.

    The files are package data of ``nilearn.datasets``; they are located from the top-level package because
    importing ``nilearn.datasets`` itself would pull in scikit-learn and cost seconds.
    """
    resource = resources.files("nilearn") / "datasets" / "data" / TEMPLATE_FILE.format(kind)
    with resources.as_file(resource) as path:
        if not path.is_file():
            raise RegbenchError(f"{path}: ICBM152 template missing from the nilearn package (need nilearn>=0.10)")
        image = nib.load(path)
        return np.asarray(image.dataobj, dtype=np.float32) / 255, image.affine


@functools.cache
def load_template() -> Template:
    """Read the template and build its parcellation (one or two seconds; cached for the process)."""
    (t1, affine), (grey, _), (white, _) = (_read_map(kind) for kind in ("t1", "gm", "wm"))
    if not np.allclose(affine[:3, :3], np.eye(3)):
        raise RegbenchError("ICBM152 template: expected an axis-aligned 1 mm RAS grid, got affine "
                            f"{affine.tolist()}")
    inside = np.argwhere(grey + white > 0.5)
    low = np.maximum(inside.min(0) - CROP_MARGIN_MM, 0)
    high = np.minimum(inside.max(0) + CROP_MARGIN_MM + 1, t1.shape)
    crop = tuple(slice(a, b) for a, b in zip(low, high))
    affine = affine.copy()
    affine[:3, 3] += low
    t1, grey, white = t1[crop], grey[crop], white[crop]
    labels = parcellate(t1, grey, white, affine)
    inside = np.argwhere(labels)
    centre = affine[:3, :3] @ ((inside.min(0) + inside.max(0)) / 2) + affine[:3, 3]
    for array in (t1, labels, centre):
        array.flags.writeable = False
    return Template(t1, labels, affine, centre)


def parcellate(t1: np.ndarray, grey: np.ndarray, white: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Thirteen regions (``LABELS``) filling the closed brain, from tissue maps and MNI geometry.

    Tissue is where grey plus white probability exceeds 0.5; the closed brain fills the sulci and ventricles.
    Brainstem and cerebellum are cut off geometrically (an oblique elliptic cylinder for the brainstem, the
    tentorium as a plane rising towards the midline). In the cerebrum, deep grey matter
    is grey-dominant tissue inside an ellipsoid around striatum and thalamus; ventricles are dark non-tissue
    more than 20 mm below the closed surface near the centre; the white-matter core is white-dominant tissue
    smoothed at 2 mm (gyral fingers go to the cortex); everything else is cortical mantle, split into lobes by
    planes approximating the Sylvian fissure and the central sulcus. Left is MNI x < 0. Rule thresholds are MNI
    millimetres read off the template.

    Args:
        t1, grey, white: template maps in [0, 1] on one 1 mm grid.
        affine: voxel to MNI mm of that grid (axis-aligned).

    Returns:
        uint8 labels on the grid.
    """
    x, y, z = (np.arange(n) * affine[a, a] + affine[a, 3] for a, n in enumerate(t1.shape))
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
    tissue = grey + white > 0.5
    closed, depth = _closed_brain(tissue)

    stem_axis_y = -24 + 0.3 * (z + 6)  # the brainstem leans back: midbrain at y -24, medulla at y -43
    brainstem = tissue & (z < -6) & ((x / 18) ** 2 + ((y - stem_axis_y) / 14) ** 2 < 1)
    tentorium = -14 - 0.2 * np.clip(-40 - y, 0, None) + 8 * np.clip(1 - np.abs(x) / 25, 0, None)
    cerebellum = closed & ~brainstem & (y < -34) & (z < tentorium)
    cerebrum = closed & ~brainstem & ~cerebellum

    striatum_thalamus = ((np.abs(x) - 18) / 16) ** 2 + ((y + 5) / 30) ** 2 + ((z - 5) / 20) ** 2 < 1
    deep = ndimage.gaussian_filter((tissue & (grey >= white) & striatum_thalamus).astype(np.float32), 1) > 0.5
    central = (np.abs(x) < 30) & (y > -50) & (y < 35) & (z > -10) & (z < 35)
    ventricles = ~tissue & (t1 < 0.45) & (depth > 20) & central
    core = ndimage.gaussian_filter((tissue & (white > grey)).astype(np.float32), 2) > 0.5
    temporal = (y > -62) & (y < 24) & (z < -2 - 0.45 * y) & (np.abs(x) > 20 + 1.2 * np.clip(z + 10, 0, None))
    frontal = ~temporal & (y > -10 - 0.6 * (np.maximum(z, 20) - 30))

    labels = np.zeros(t1.shape, np.uint8)
    right = np.broadcast_to(x >= 0, t1.shape)
    for first, region in ((1, frontal), (3, ~frontal & ~temporal), (5, temporal), (7, core), (9, deep)):
        labels[cerebrum & region] = first
    labels[(labels > 0) & right] += 1
    labels[cerebrum & ventricles] = 11
    labels[cerebellum] = 12
    labels[brainstem] = 13
    return _majority(labels, len(LABELS), MAJORITY_MM)


def _closed_brain(tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tissue mask with sulci and ventricles filled (a 3 mm Gaussian closing, then hole filling), and each
    voxel's depth below its surface: the chessboard distance in mm, which never exceeds the Euclidean one."""
    closed = ndimage.binary_fill_holes(ndimage.gaussian_filter(tissue.astype(np.float32), 3) > 0.4) | tissue
    return closed, ndimage.distance_transform_cdt(closed, metric="chessboard")


def _majority(labels: np.ndarray, count: int, width: int) -> np.ndarray:
    """Each voxel takes the most frequent label in the ``width``-cube around it (ties go to the lower label).

    Shares of the foreground labels are computed within each label's bounding box (the costly part); the
    background's share is what they leave.
    """
    best = np.zeros(labels.shape, np.float32)
    taken = np.zeros(labels.shape, np.float32)
    result = np.zeros_like(labels)
    for label, found in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if found is None:
            continue
        box = tuple(slice(max(s.start - width, 0), s.stop + width) for s in found)
        share = ndimage.uniform_filter((labels[box] == label).astype(np.float32), width, mode="constant")
        taken[box] += share
        wins = share > best[box]
        best[box][wins] = share[wins]
        result[box][wins] = label
    result[1 - taken >= best] = 0
    return result


def generate(spec: TaskSpec, scale: Scale, rng: np.random.Generator) -> SyntheticData:
    """Draw the subjects of ``scale`` and the true displacement of every evaluation pair.

    Each subject draws from its own child of ``rng``, velocity first, on a control grid that is the same at
    every scale: with one seed, subject s is deformed alike at smoke, default and paper resolution.
    """
    if spec.labels != LABELS:
        raise DatasetError(spec.path or spec.name, f"labels must be those brain.py builds: {LABELS}")
    settings = spec.settings_as(BrainSettings)
    template = load_template()
    fov = tuple(settings.field_of_view_mm)
    grid = Grid.covering(scale.shape, fov)
    control = Grid.covering(tuple(int(round(f / settings.control_spacing_mm)) for f in fov), fov)
    to_grid = FieldResampler(control, grid)
    affine = grid.affine
    affine[:3, 3] += template.centre_mm
    to_template = np.linalg.inv(template.affine) @ affine  # task voxel -> template voxel
    psf_sigma = [np.sqrt(max(s**2 - 1, 0)) / FWHM_PER_SIGMA for s in grid.spacing]  # 1 mm -> voxel-wide FWHM
    blurred = ndimage.gaussian_filter(template.t1, psf_sigma)
    cohort = Cohort.of(scale, pairing="unpaired", modalities=tuple(spec.modalities), task=spec.name)

    cases: dict[CaseId, Case] = {}
    velocities: dict[int, np.ndarray] = {}
    for subject, subject_rng in zip(cohort.subjects, rng.spawn(len(cohort.subjects))):
        velocity = synth.random_velocity(subject_rng, control.shape,
                                         sigma=settings.velocity_smoothness_mm / settings.control_spacing_mm,
                                         amplitude=settings.velocity_amplitude_mm / settings.control_spacing_mm)
        deformed = synth.coordinates(to_grid.displacement(synth.exp_velocity(velocity)))
        index = np.tensordot(to_template[:3, :3], deformed, axes=1) + to_template[:3, 3].reshape(3, 1, 1, 1)
        t1 = ndimage.map_coordinates(blurred, index, order=1, mode="constant")
        labels = ndimage.map_coordinates(template.labels, index, order=0, mode="constant")
        image = _intensities(subject_rng, t1, settings, control, to_grid)
        (case_id,) = cohort.cases(subject)
        mask = LabelMap((labels > 0).astype(np.uint8), affine)
        cases[case_id] = Case(case_id, Image(image, affine), LabelMap(labels, affine), mask)
        if subject not in cohort.training:
            velocities[subject] = velocity

    groundtruth = {}
    for pair in cohort.pairs("val") + cohort.pairs("test"):
        field = synth.inter_subject_groundtruth(velocities[pair.fixed.case], velocities[pair.moving.case])
        groundtruth[pair] = Displacement(np.moveaxis(to_grid.displacement(field), 0, -1).astype(np.float32))
    return SyntheticData(cases, cohort.training_cases, cohort.test_cases, cohort.pairs("val"),
                         cohort.pairs("test"), groundtruth, cohort.pairing)


class FieldResampler:
    """Carries smooth fields from a coarse control grid to the task grid covering the same field of view.

    Velocities are integrated and bias fields drawn on the control grid: the fields are smooth on the scale of
    centimetres, so linear interpolation loses nothing measurable (the true field still maps each fixed voxel
    onto its moving counterpart to within a few hundredths of a voxel on average) and the cost of integration
    no longer grows with the scale. Interpolation is separable, one small matrix per axis, with voxel centres
    at (i + 1/2) * spacing across the field of view and the edge values repeated beyond the outer centres.
    """

    def __init__(self, control: Grid, grid: Grid) -> None:
        self._weights = [_linear_weights(m, n) for m, n in zip(control.shape, grid.shape)]
        column = (-1, *([1] * len(grid.shape)))
        self._scale = (np.asarray(control.spacing) / np.asarray(grid.spacing)).reshape(column)

    def values(self, field: np.ndarray) -> np.ndarray:
        """Channels (C, *control.shape) interpolated at the task grid's voxels: (C, *grid.shape)."""
        for axis, weights in enumerate(self._weights, start=1):
            field = np.moveaxis(np.tensordot(weights, field, axes=(1, axis)), 0, axis)
        return field

    def displacement(self, field: np.ndarray) -> np.ndarray:
        """A displacement in control voxels, interpolated and converted to task-grid voxels."""
        return self.values(field) * self._scale


def _linear_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix of linear interpolation between grids of ``source >= 2`` and ``target`` voxels
    tiling the same interval."""
    position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.minimum(position.astype(int), source - 2)
    upper = position - low
    weights = np.zeros((target, source))
    weights[np.arange(target), low] = 1 - upper
    weights[np.arange(target), low + 1] = upper
    return weights


def _intensities(rng: np.random.Generator, t1: np.ndarray, settings: BrainSettings, control: Grid,
                 to_grid: FieldResampler) -> np.ndarray:
    """One subject's contrast and artefacts: ``gain * bias * t1**gamma`` plus Rician noise, float32."""
    gain = rng.uniform(*settings.gain)
    gamma = np.exp(rng.uniform(*np.log(settings.gamma)))
    bias = to_grid.values(synth.bias_field(rng, control.shape, strength=settings.bias_strength)[None])[0]
    return synth.rician_noise(rng, gain * bias * t1**gamma, sigma=settings.noise).astype(np.float32)
