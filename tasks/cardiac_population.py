"""A cardiac population with known clinical effects: covariates that shape each subject's heart and motion, and
the whole cardiac cycle as a sequence of frames (2D+t), not only end-diastole and end-systole.

The anatomy and motion are ``cardiac_mr``'s phantom (``cardiac.Heart``, ``cardiac.Contraction``); this module
draws each subject's covariates and moves its cavity radius, wall thickness and ejection fraction by them.
Their direction and rough size follow the cardiovascular MR literature; the sizes are this phantom's choice
(``Effects``), stated so that tests and the generative model's evaluation can recover them:

- Sex: men have larger ventricles and thicker walls than women, women a slightly higher ejection fraction
  (Kawel-Boehm et al., "Normal values for cardiovascular magnetic resonance in adults and children", JCMR 17:29,
  2015, doi:10.1186/s12968-015-0111-7: LV end-diastolic volume about a fifth larger in men, LV mass larger,
  LVEF a few points higher in women).
- Age: the LV cavity shrinks and the wall thickens with age, concentric remodelling with the ejection fraction
  kept or slightly higher (Cheng et al., "Age-related left ventricular remodeling and associated risk for
  cardiovascular outcomes: the Multi-Ethnic Study of Atherosclerosis", Circ Cardiovasc Imaging 2:191, 2009,
  doi:10.1161/CIRCIMAGING.108.819938).
- Diastolic filling: with age, less of the LV's filling happens early in diastole and more with the atrial
  contraction at its end. Benjamin et al., "Determinants of Doppler indexes of left ventricular diastolic
  function in normal subjects (the Framingham Heart Study)", Am J Cardiol 70:508, 1992: mitral E/A from 2.08 +-
  0.55 in the third decade to 0.84 +- 0.29 in the eighth, age the predominant determinant, sex and systolic
  pressure minor ones; Nagueh et al., "Recommendations for the evaluation of left ventricular diastolic function
  by echocardiography", J Am Soc Echocardiogr 22:107, 2009 (normal values as recalled, not from a stored copy:
  E/A about 1.5 at 21-40 years, 1.3 at 41-60, 1.0 over 60). The early share E/(E+A) then falls 0.03 (Nagueh) to
  0.045 (Framingham) per decade; this phantom takes the smaller, with a spread of 0.05 between subjects of one
  age and no sex or pressure effect.
- Systolic blood pressure: pressure overload thickens the wall (concentric hypertrophy; Lorell and Carabello,
  "Left ventricular hypertrophy: pathogenesis, detection, and prognosis", Circulation 102:470, 2000,
  doi:10.1161/01.CIR.102.4.470). It rises with age and is a little higher in men, as in population surveys, so
  age and pressure are correlated here too (tests separate them by multiple regression).

The cycle: frame k of ``frames`` sits at phase t = k / frames of one beat (``cycle_phases``). The heart contracts
from end-diastole (t = 0) to end-systole (t = ``END_SYSTOLE``) and refills in two waves, ``contraction(t)`` going
smoothly from 0 to 1 and back to 0: early rapid filling up to ``EARLY_FILLING_END``, a pause (diastasis), and the
atrial contraction from ``ATRIAL_START``, the subject's early share of the filling set by its age; frame t shows
the end-diastolic anatomy at ``y + exp(contraction(t) v)(y)``, with v the subject's ``Contraction`` velocity, so
the end-systolic frame is exactly ``cardiac_mr``'s moving image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from regbench.tasks import synth
from regbench.tasks.cardiac import LABELS, CardiacSettings, Contraction, Heart
from regbench.tasks.cardiac_volume import LongAxis
from regbench.tasks.phantom import Grid

END_SYSTOLE = 0.35  # fraction of the beat from end-diastole to end-systole
EARLY_FILLING_END = 0.65  # phase at which early rapid filling ends (diastasis follows)
ATRIAL_START = 0.8  # phase at which the atrial contraction starts filling the LV again
DIASTASIS = 0.72  # a phase in the pause between the two filling waves
EARLY_FILLING = 0.55  # share of diastolic filling done early (E/(E+A)) at the reference age
EARLY_FILLING_SPREAD = 0.05  # its standard deviation between subjects of one age
REFERENCE_AGE = 50.0  # years: the effects are stated relative to a 50-year-old woman at 120 mmHg
REFERENCE_BP = 120.0  # mmHg
AGE_GROUPS = ((20.0, 40.0), (40.0, 60.0), (60.0, 80.0))  # years: the groups cohorts are stratified by
SUBGROUPS = [(male, ages) for male in (0, 1) for ages in AGE_GROUPS]  # (male, age group), each sex x age group


@dataclass(frozen=True)
class Covariates:
    """A subject's clinical factors.

    Attributes:
        age: years.
        male: 1 for a man, 0 for a woman.
        systolic_bp: systolic blood pressure, mmHg.
    """

    age: float
    male: int
    systolic_bp: float

    @classmethod
    def draw(cls, rng: np.random.Generator, *, age: tuple[float, float] = (20.0, 80.0),
             male: int | None = None) -> Covariates:
        """A subject of a uniform age in ``age``, of either sex (or ``male``), whose pressure rises with age
        (0.5 mmHg per year) and is 5 mmHg higher in men, with a spread of 12 mmHg."""
        years = float(rng.uniform(*age))
        sex = int(rng.integers(0, 2)) if male is None else int(male)
        pressure = 110.0 + 0.5 * (years - 20.0) + 5.0 * sex + 12.0 * float(rng.standard_normal())
        return cls(years, sex, float(np.clip(pressure, 90.0, 200.0)))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Effects:
    """How the covariates move a subject's anatomy and motion from what ``CardiacSettings`` draws.

    Attributes:
        radius_male: relative change of the LV cavity radius in men (+7 %: about +15 % cavity area in the
            slice, +22 % volume).
        radius_per_decade: relative change of the cavity radius per decade of age.
        wall_male_mm: wall thickness added in men.
        wall_per_decade_mm: wall thickness added per decade of age.
        wall_per_10_mmhg_mm: wall thickness added per 10 mmHg of systolic pressure above ``REFERENCE_BP``.
        ejection_male: ejection fraction (of the cavity area) added in men.
        ejection_per_decade: ejection fraction added per decade of age.
        early_filling_per_decade: share of diastolic filling done early, added per decade of age.
    """

    radius_male: float = 0.07
    radius_per_decade: float = -0.02
    wall_male_mm: float = 1.0
    wall_per_decade_mm: float = 0.3
    wall_per_10_mmhg_mm: float = 0.3
    ejection_male: float = -0.02
    ejection_per_decade: float = 0.005
    early_filling_per_decade: float = -0.03

    def radius_and_wall(self, covariates: Covariates, radius: float, wall: float) -> tuple[float, float]:
        """A subject's cavity radius and wall thickness (mm), from a woman's of 50 years at 120 mmHg."""
        decades = (covariates.age - REFERENCE_AGE) / 10.0
        scaled = radius * (1.0 + self.radius_male * covariates.male + self.radius_per_decade * decades)
        thicker = (wall + self.wall_male_mm * covariates.male + self.wall_per_decade_mm * decades
                   + self.wall_per_10_mmhg_mm * (covariates.systolic_bp - REFERENCE_BP) / 10.0)
        return scaled, max(thicker, 3.0)

    def ejection(self, covariates: Covariates, ejected: float) -> float:
        """A subject's ejection fraction, from a woman's of 50 years."""
        decades = (covariates.age - REFERENCE_AGE) / 10.0
        shifted = ejected + self.ejection_male * covariates.male + self.ejection_per_decade * decades
        return float(np.clip(shifted, 0.2, 0.8))

    def early_filling(self, covariates: Covariates, spread: float) -> float:
        """A subject's early share of diastolic filling, from the reference age's and the subject's own
        deviation ``spread``."""
        decades = (covariates.age - REFERENCE_AGE) / 10.0
        return float(np.clip(EARLY_FILLING + self.early_filling_per_decade * decades + spread, 0.2, 0.9))


EFFECTS = Effects()


def _ramp(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 before ``start``, a half cosine up to 1 at ``end``, 1 after."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip((t - start) / (end - start), 0.0, 1.0)))


def contraction_at(phase: np.ndarray | float, early_filling: float = EARLY_FILLING) -> np.ndarray:
    """How far (0 at end-diastole, 1 at end-systole) the heart has contracted at ``phase`` of the beat in
    [0, 1): a half cosine up to ``END_SYSTOLE``; then ``early_filling`` of the way back by
    ``EARLY_FILLING_END``, the rest from ``ATRIAL_START`` to the next end-diastole."""
    t = np.mod(np.asarray(phase, dtype=np.float64), 1.0)
    filled = (early_filling * _ramp(t, END_SYSTOLE, EARLY_FILLING_END)
              + (1.0 - early_filling) * _ramp(t, ATRIAL_START, 1.0))
    return np.where(t <= END_SYSTOLE, _ramp(t, 0.0, END_SYSTOLE), 1.0 - filled)


def cycle_phases(frames: int) -> np.ndarray:
    """The phases of ``frames`` evenly spaced frames of one beat, the first at end-diastole."""
    return np.arange(frames) / frames


def closest_frame(phases: np.ndarray, phase: float) -> int:
    """The index of the frame whose phase is closest to ``phase``."""
    return int(np.argmin(np.abs(np.asarray(phases) - phase)))


def end_systole_frame(phases: np.ndarray) -> int:
    """The index of the phase closest to end-systole."""
    return closest_frame(phases, END_SYSTOLE)


@dataclass(frozen=True)
class CineSubject:
    """One subject's frames.

    Attributes:
        covariates: the subject's clinical factors.
        phases: (frames,) phase of each frame in the beat, 0 at end-diastole.
        labels: (frames, *shape) label maps (``cardiac.LABELS``).
        images: (frames, *shape) MR-like images of the same frames, or None when not rendered.
        grid: the grid the frames lie on.
    """

    covariates: Covariates
    phases: np.ndarray
    labels: np.ndarray
    images: np.ndarray | None
    grid: Grid

    @property
    def end_systole(self) -> int:
        """The frame closest to end-systole."""
        return end_systole_frame(self.phases)


def draw_subject(rng: np.random.Generator, settings: CardiacSettings, grid: Grid, covariates: Covariates,
                 phases: np.ndarray, *, images: bool = True, effects: Effects = EFFECTS) -> CineSubject:
    """A subject with ``covariates``: its heart and motion drawn as ``cardiac_mr`` draws them, moved by
    ``effects``, rendered at ``phases`` of one beat (``cycle_phases`` for a whole cycle; with images: bias
    field and Rician noise as in ``cardiac_mr``). On a 3D grid the heart is ``cardiac_volume``'s, label maps
    only."""
    volume = len(grid.shape) == 3
    if volume and images:
        raise ValueError("draw_subject(): a 3D subject is drawn as label maps only (images=False)")
    heart = Heart.draw(rng, settings, sized=lambda radius, wall: effects.radius_and_wall(covariates, radius, wall))
    contraction = Contraction.draw(rng, heart, settings, shifted=lambda ejected: effects.ejection(covariates, ejected))
    early_filling = effects.early_filling(covariates, EARLY_FILLING_SPREAD * float(rng.standard_normal()))
    points = grid.points_mm()
    if volume:
        axis = LongAxis.draw(rng)
        velocity = grid.to_voxels(axis.velocity(contraction, points))
    else:
        velocity = grid.to_voxels(contraction.velocity(points))
    bias = synth.bias_field(rng, grid.shape, strength=settings.bias_strength) if images else None
    ramp = float(np.mean(grid.spacing))
    label_frames, image_frames = [], []
    for amount in contraction_at(phases, early_filling):
        at = points if amount == 0 else grid.points_mm(synth.exp_velocity(amount * velocity))
        if volume:
            label_frames.append(axis.labels(heart, at))
            continue
        intensity, labels = heart.render(at, ramp)
        label_frames.append(labels)
        if bias is not None:
            image_frames.append(synth.rician_noise(rng, bias * intensity, sigma=settings.noise).astype(np.float32))
    return CineSubject(covariates, np.asarray(phases, dtype=np.float64), np.stack(label_frames),
                       np.stack(image_frames) if images else None, grid)


def clinical_indices(labels: np.ndarray, spacing: tuple[float, ...],
                     end_systole: int | None = None) -> dict[str, float]:
    """The clinical indices of one cycle of label maps (frames, *shape) on a grid of ``spacing`` (mm): LV cavity
    at end-diastole (frame 0) and end-systole (the frame of the smallest cavity, or ``end_systole``), ejection
    fraction of the cavity, myocardium at end-diastole and its mean thickness (mm), RV cavity at both. Sizes are
    areas in the slice (mm^2) in 2D, volumes (mm^3) in 3D; the thickness is the width of the ring of the
    cavity's and myocardium's areas, in 3D the mean over the short-axis slices (array axis 2) that hold both."""
    voxel = float(np.prod(spacing))
    counts = {label: (labels == label).reshape(labels.shape[0], -1).sum(axis=1) * voxel for label in LABELS}
    es = int(np.argmin(counts[1])) if end_systole is None else end_systole
    lv_ed, lv_es, myo_ed = float(counts[1][0]), float(counts[1][es]), float(counts[2][0])
    return {
        "lv_ed_area": lv_ed,
        "lv_es_area": lv_es,
        "ejection_fraction": (lv_ed - lv_es) / lv_ed if lv_ed > 0 else float("nan"),
        "myo_ed_area": myo_ed,
        "wall_ed_mm": _ring_width(labels[0], spacing),
        "rv_ed_area": float(counts[3][0]),
        "rv_es_area": float(counts[3][es]),
    }


def _ring_width(labels: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Mean width (mm) of the myocardial ring about the cavity of a slice, or of a volume's slices that hold both
    (NaN where none does): the difference of the radii of the circles of the cavity's and of cavity plus
    myocardium's areas."""
    pixel = float(np.prod(spacing[:2]))
    slices = labels[..., None] if labels.ndim == 2 else labels
    cavity = (slices == 1).sum(axis=(0, 1)) * pixel
    wall = (slices == 2).sum(axis=(0, 1)) * pixel
    both = (cavity > 0) & (wall > 0) if labels.ndim == 3 else np.ones(1, bool)
    widths = np.sqrt((cavity + wall) / np.pi) - np.sqrt(cavity / np.pi)
    return float(widths[both].mean()) if both.any() else float("nan")


def early_filling_share(labels: np.ndarray) -> float:
    """The share of the LV cavity's diastolic refilling done by diastasis, of one whole cycle of label maps
    (frames at ``cycle_phases``): (cavity at diastasis - at end-systole, the frame of the smallest cavity) / (at
    end-diastole - at end-systole),
    the label maps' counterpart of the early share of mitral inflow; NaN where the cavity does not fill."""
    cavity = (labels == 1).reshape(labels.shape[0], -1).sum(axis=1).astype(np.float64)
    es = int(np.argmin(cavity))
    pause = closest_frame(cycle_phases(labels.shape[0]), DIASTASIS)
    stroke = cavity[0] - cavity[es]
    return float((cavity[pause] - cavity[es]) / stroke) if stroke > 0 and pause > es else float("nan")


def mid_ventricular_slice(cycle: np.ndarray) -> np.ndarray:
    """The short-axis slice (array axis 2) of a 3D cycle (frames, X, Y, Z) halfway along its end-diastolic LV
    cavity, the slice a single-slice cine study images (the volume's middle slice where there is no cavity)."""
    cavity = np.flatnonzero((cycle[0] == 1).any(axis=(0, 1)))
    middle = (cavity[0] + cavity[-1]) // 2 if cavity.size else cycle.shape[-1] // 2
    return cycle[..., middle]
