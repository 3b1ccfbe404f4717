"""cardiac_mr: the analytic anatomy against its own formulas, and systole that behaves like a heart.

Every task's labels are checked against its true fields in test_groundtruth.py; here the shapes, the motion
and the orientation particular to this generator.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from regbench.errors import DatasetError
from regbench.tasks import cardiac
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import Scale, load_spec


@pytest.fixture(scope="module")
def spec():
    return load_spec("cardiac_mr")


@pytest.fixture(scope="module")
def settings(spec) -> cardiac.CardiacSettings:
    return spec.settings_as(cardiac.CardiacSettings)


def test_fourier_series_and_ellipse_level_known_values():
    # 2 + 1 cos(theta) + 0.5 sin(theta): 3 at 0, 2.5 at pi/2, 1 at pi.
    np.testing.assert_allclose(cardiac._fourier(np.array([2.0, 1.0, 0.5]), np.array([0, np.pi / 2, np.pi])),
                               [3.0, 2.5, 1.0], atol=1e-12)
    # Semi-axes 10 and 5, the first turned onto axis 1; the level is the signed distance along the ray from
    # the centre, exact through the vertices.
    ellipse = cardiac.Ellipse((1.0, 2.0), (10.0, 5.0), np.pi / 2)
    points = np.array([[1.0, 8.0, 1.0, 1.0], [14.0, 2.0, -7.0, 2.0]])  # (2, 4): columns are points
    # Beyond the first vertex, beyond the second, 1 mm inside the first, and the centre (the shorter axis).
    np.testing.assert_allclose(ellipse.level(points), [2.0, 2.0, -1.0, -5.0], atol=1e-12)


def test_end_diastolic_labels_have_the_areas_of_the_drawn_shapes(settings):
    # Areas in polar form about the LV centre, 1/2 integral of r(theta)^2, against pixel counts at 0.25 mm
    # (the boundary pixels' error is about perimeter x 0.25 mm / 8 < 0.5 % of each area).
    heart = cardiac.Heart.draw(np.random.default_rng(3), settings)
    grid = Grid.covering((640, 640), (160.0, 160.0))
    _, labels = heart.render(grid.points_mm() + heart.centre.reshape(2, 1, 1), 0.25)
    theta = np.linspace(-np.pi, np.pi, 20001)
    endo, epi = cardiac._fourier(heart.endo, theta), cardiac._fourier(heart.epi, theta)
    off_centre = (theta - heart.rv_angle + np.pi) % (2 * np.pi) - np.pi
    depth = heart.rv_depth * np.sqrt(np.clip(1 - (off_centre / heart.rv_span) ** 2, 0, None))
    expected = [np.trapezoid(r_out**2 - r_in**2, theta) / 2
                for r_in, r_out in ((0 * endo, endo), (endo, epi), (epi, epi + depth))]
    measured = [np.sum(labels == label) * 0.25**2 for label in (1, 2, 3)]
    np.testing.assert_allclose(measured, expected, rtol=0.005)


def test_motion_is_still_at_the_centre_linear_near_it_and_at_rest_far_away(settings):
    heart = cardiac.Heart.draw(np.random.default_rng(4), settings)
    motion = cardiac.Contraction.draw(np.random.default_rng(4), heart, settings)
    centre = heart.centre.reshape(2, 1)
    small = np.array([[0.01, 0.0], [0.0, 0.01]])  # offsets of 0.01 mm along each axis
    near = motion.velocity(centre + small)
    # strength r + twist J r, to second order in |r| / core, with J (a, b) = (-b, a).
    expected = motion.strength * small + motion.twist * np.array([[0.0, -0.01], [0.01, 0.0]])
    np.testing.assert_allclose(near, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(motion.velocity(centre)[:, 0], [0.0, 0.0])
    far = centre + np.array([[150.0, -150.0, 0.0], [0.0, 0.0, 150.0]])  # over four LV radii away
    assert np.abs(motion.velocity(far)).max() < 1e-3


def test_systole_ejects_the_drawn_fraction_and_thickens_the_wall(generated_task, spec):
    # Ejection fractions are drawn in [0.5, 0.65] of the ED cavity area, so ES/ED lies in [0.35, 0.5] up to
    # the cavity's non-circular shape and the pixels (measured 0.36 to 0.50). Beyond the core the motion has
    # no divergence, so the myocardium keeps its area (measured within 2.2 %) and, being nearer the centre at
    # ES, is thicker (measured +23 % to +40 %). The RV ejects too (ES/ED measured 0.42 to 0.65).
    task = generated_task("cardiac_mr")
    pixel = np.prod(task.load_case(task.pair_ids("val")[0].fixed).image.spacing)
    for pair_id in task.pair_ids("val") + task.pair_ids("test"):
        pair = task.load_pair(pair_id)
        ed, es = pair.fixed.labels.data, pair.moving.labels.data
        cavity = [np.sum(frame == 1) * pixel for frame in (ed, es)]
        wall = [np.sum(frame == 2) * pixel for frame in (ed, es)]
        thickness = [np.sqrt((c + w) / np.pi) - np.sqrt(c / np.pi) for c, w in zip(cavity, wall)]
        assert 0.33 < cavity[1] / cavity[0] < 0.52, pair_id.key
        assert wall[1] == pytest.approx(wall[0], rel=0.04), pair_id.key
        assert thickness[1] > 1.15 * thickness[0], pair_id.key
        assert np.sum(es == 3) < 0.75 * np.sum(ed == 3), pair_id.key


def test_rv_lies_to_the_right_of_and_in_front_of_the_lv(generated_task):
    # The RV is drawn 5 to 35 degrees from axis 0 (RAS: the patient's right) towards axis 1 (anterior).
    task = generated_task("cardiac_mr")
    case = task.load_case(task.pair_ids("test")[0].fixed)
    affine = case.image.affine
    lv, rv = (affine[:2, :2] @ np.argwhere(case.labels.data == k).mean(0) for k in (1, 3))
    assert rv[0] > lv[0] + 10 and rv[1] > lv[1]


def test_one_seed_gives_the_same_hearts_at_every_scale(spec):
    # Anatomy and motion are drawn before anything grid-sized: label areas agree across 3 mm and 1.5 mm pixels
    # up to pixelation (a few percent of the smallest region).
    coarse = cardiac.generate(spec, Scale((64, 64), 0, 0, 1), np.random.default_rng(9))
    fine = cardiac.generate(spec, Scale((128, 128), 0, 0, 1), np.random.default_rng(9))
    for (case_id, small), big in zip(coarse.cases.items(), fine.cases.values()):
        areas = [[np.sum(c.labels.data == k) * np.prod(c.image.spacing) for k in (1, 2, 3)] for c in (small, big)]
        np.testing.assert_allclose(areas[0], areas[1], rtol=0.05, err_msg=str(case_id))


def test_settings_and_labels_that_do_not_fit_are_errors_naming_the_yaml(spec):
    incomplete = dataclasses.replace(spec, settings={k: v for k, v in spec.settings.items() if k != "wall_mm"})
    with pytest.raises(DatasetError, match="cardiac_mr.yaml.*wall_mm"):
        cardiac.generate(incomplete, spec.scale("smoke"), np.random.default_rng(0))
    relabelled = dataclasses.replace(spec, labels={1: "LV", 2: "MYO", 3: "RV"})
    with pytest.raises(DatasetError, match="cardiac_mr.yaml: labels must be"):
        cardiac.generate(relabelled, spec.scale("smoke"), np.random.default_rng(0))
