"""The cardiac population: its covariate effects hold in its own label maps (recovered by regression with the
stated sign and size), and its cycle is ``cardiac_mr``'s motion run forwards and back."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.tasks import synth
from regbench.tasks.cardiac import CardiacSettings, Contraction, Heart
from regbench.tasks.cardiac_population import (EARLY_FILLING, EFFECTS, END_SYSTOLE, REFERENCE_AGE, REFERENCE_BP,
                                               Covariates, Effects, clinical_indices, contraction_at, cycle_phases,
                                               draw_subject, early_filling_share)
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec

SETTINGS = load_spec("cardiac_mr").settings_as(CardiacSettings)
GRID = Grid.covering((64, 64), tuple(SETTINGS.field_of_view_mm))  # 3 mm voxels


@pytest.fixture(scope="module")
def population():
    """400 subjects' end-diastolic and end-systolic label maps: covariates (1, male, decades from 50 years,
    10 mmHg from 120) and indices (wall mm, log LV cavity area, ejection fraction)."""
    rows, indices = [], []
    for rng in np.random.default_rng(1).spawn(400):
        covariates = Covariates.draw(rng)
        subject = draw_subject(rng, SETTINGS, GRID, covariates, np.array([0.0, END_SYSTOLE]), images=False)
        found = clinical_indices(subject.labels, subject.grid.spacing, subject.end_systole)
        rows.append([1.0, covariates.male, (covariates.age - REFERENCE_AGE) / 10,
                     (covariates.systolic_bp - REFERENCE_BP) / 10])
        indices.append([found["wall_ed_mm"], np.log(found["lv_ed_area"]), found["ejection_fraction"]])
    return np.array(rows), np.array(indices)


def _effects(population) -> np.ndarray:
    """Least-squares coefficients (intercept, male, per decade, per 10 mmHg) x (wall, log area, EF)."""
    design, indices = population
    return np.linalg.lstsq(design, indices, rcond=None)[0]


@pytest.mark.parametrize("index, covariate, expected", [
    (0, 1, EFFECTS.wall_male_mm),
    (0, 2, EFFECTS.wall_per_decade_mm),
    (0, 3, EFFECTS.wall_per_10_mmhg_mm),
    (1, 1, 2 * np.log1p(EFFECTS.radius_male)),  # area goes with the radius squared
    (1, 2, 2 * np.log1p(EFFECTS.radius_per_decade)),
    (2, 1, EFFECTS.ejection_male),
    (2, 2, EFFECTS.ejection_per_decade),
])
def test_each_covariate_effect_is_recovered_with_its_sign_and_rough_size(population, index, covariate, expected):
    # Measured (seed 1, 400 subjects): wall 1.27 / 0.36 / 0.26 mm, log area 0.139 / -0.050, EF -0.022 / 0.0072.
    found = _effects(population)[covariate, index]
    assert np.sign(found) == np.sign(expected)
    assert abs(found - expected) <= 0.45 * abs(expected), f"found {found:.4f}, expected {expected:.4f}"


@pytest.mark.parametrize("index, covariate", [(1, 3), (2, 3)])
def test_pressure_moves_only_the_wall(population, index, covariate):
    # Pressure correlates with age (r = 0.6 here), yet its own effect on cavity size and EF is about zero.
    assert abs(_effects(population)[covariate, index]) < 0.01


def test_older_hearts_fill_less_early_in_diastole():
    # 200 whole cycles of 10 frames; measured (seed 1): -0.033 per decade (set -0.03), 0.54 at 50 years, sex and
    # pressure about 0.003.
    design, shares = [], []
    for rng in np.random.default_rng(1).spawn(200):
        covariates = Covariates.draw(rng)
        subject = draw_subject(rng, SETTINGS, GRID, covariates, cycle_phases(10), images=False)
        design.append([1.0, covariates.male, (covariates.age - REFERENCE_AGE) / 10,
                       (covariates.systolic_bp - REFERENCE_BP) / 10])
        shares.append(early_filling_share(subject.labels))
    found = np.linalg.lstsq(np.array(design), np.array(shares), rcond=None)[0]
    assert abs(found[2] - EFFECTS.early_filling_per_decade) <= 0.3 * abs(EFFECTS.early_filling_per_decade)
    assert abs(found[0] - EARLY_FILLING) < 0.05
    assert abs(found[1]) < 0.015 and abs(found[3]) < 0.015


def test_covariates_rise_with_age_as_populations_do():
    people = [Covariates.draw(rng) for rng in np.random.default_rng(0).spawn(500)]
    ages = np.array([p.age for p in people])
    pressures = np.array([p.systolic_bp for p in people])
    assert 20 <= ages.min() and ages.max() <= 80
    assert 0.3 < np.polyfit(ages, pressures, 1)[0] < 0.7  # drawn at 0.5 mmHg per year
    assert 0.4 < np.mean([p.male for p in people]) < 0.6


def test_contraction_peaks_at_end_systole_and_returns():
    assert contraction_at(0.0) == 0.0
    assert contraction_at(END_SYSTOLE) == pytest.approx(1.0)
    assert contraction_at(0.999) < 1e-4
    phases = np.linspace(0, 1, 201)[:-1]
    amounts = contraction_at(phases)
    rising = phases <= END_SYSTOLE
    assert (np.diff(amounts[rising]) >= 0).all() and (np.diff(amounts[~rising]) <= 0).all()
    # Two filling waves: the early share is back by diastasis, the rest with the atrial contraction.
    assert contraction_at(0.72, early_filling=0.6) == pytest.approx(0.4)
    assert contraction_at(0.72, early_filling=0.45) == pytest.approx(0.55)
    assert contraction_at(0.999, early_filling=0.45) < 1e-4


def test_the_cycle_is_cardiac_mrs_motion_forwards_and_back():
    covariates = Covariates(age=REFERENCE_AGE, male=0, systolic_bp=REFERENCE_BP)
    subject = draw_subject(np.random.default_rng(5), SETTINGS, GRID, covariates, cycle_phases(20))
    assert subject.labels.shape == (20, 64, 64) and subject.images.shape == (20, 64, 64)
    assert subject.end_systole == 7
    # The same draws through cardiac_mr's own path: a woman of 50 at 120 mmHg is unchanged by the effects.
    rng = np.random.default_rng(5)
    heart = Heart.draw(rng, SETTINGS)
    velocity = GRID.to_voxels(Contraction.draw(rng, heart, SETTINGS).velocity(GRID.points_mm()))
    ramp = float(np.mean(GRID.spacing))
    _, diastole = heart.render(GRID.points_mm(), ramp)
    _, systole = heart.render(GRID.points_mm(synth.exp_velocity(velocity)), ramp)
    np.testing.assert_array_equal(subject.labels[0], diastole)
    assert (subject.labels[7] == systole).mean() > 0.999
    cavity = (subject.labels == 1).sum(axis=(1, 2))
    assert np.argmin(cavity) == 7 and cavity[-1] > 0.95 * cavity[0]  # relaxed back by the last frame


def test_no_effects_leave_the_draw_unchanged():
    none = Effects(*(0.0 for _ in range(8)))
    covariates = Covariates(age=75.0, male=1, systolic_bp=160.0)
    plain = draw_subject(np.random.default_rng(3), SETTINGS, GRID, Covariates(50.0, 0, 120.0), np.zeros(1))
    moved = draw_subject(np.random.default_rng(3), SETTINGS, GRID, covariates, np.zeros(1), effects=none)
    np.testing.assert_array_equal(plain.labels, moved.labels)
