"""The thorax generator: anatomy, breathing with sliding lungs, vessel keypoints, and the files it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from regbench.errors import DatasetError
from regbench.tasks.generate import generate
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec
from regbench.tasks.thorax import Breathing, Thorax, VesselTree, _flow, keypoints, smoothstep

LEFT_LUNG, RIGHT_LUNG, HEART = 1, 2, 3  # label ids of tasks/thorax_ct.yaml


@pytest.fixture(scope="module")
def thorax() -> Thorax:
    return Thorax.draw(np.random.default_rng(11))


def _breathing(**changes) -> Breathing:
    settings = dict(diaphragm_mm=(25.0, 25.0), anterior_mm=(8.0, 8.0), lateral_mm=(3.0, 3.0), outside=0.1,
                    sliding_vox=2.0, rms_mm=0.0, cell_mm=64.0)
    return Breathing(**{**settings, **changes})


def test_smoothstep_known_values():
    np.testing.assert_allclose(smoothstep(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])), [0.0, 0.0, 0.5, 1.0, 1.0])


def test_flow_integrates_a_linear_velocity_to_its_exponential():
    # dp/dt = 0.5 p gives p(1) = p(0) e^0.5; classic RK4 with 16 steps is good to about (1/16)^4
    points = np.array([[1.0, -2.0], [0.5, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(_flow(lambda p: 0.5 * p, points), points * np.exp(0.5), rtol=1e-6)


def test_vessel_trees_stay_inside_and_thin_out():
    def inside(p):
        return np.linalg.norm(p, axis=0) < 50.0

    tree = VesselTree.grow(np.random.default_rng(2), [(np.zeros(3), np.array([1.0, 0.0, 0.0]))], length_mm=15.0,
                           radius_mm=4.0, min_radius_mm=1.0, inside=inside)
    assert inside(tree.ends.T).all()
    assert tree.radii.max() == 4.0 and tree.radii.min() >= 1.0
    # 4 * 0.78^k >= 1 for at most k = 5 forks: at most 2^6 - 1 segments
    assert 7 <= len(tree.radii) <= 63


def test_centreline_samples_each_segment_at_most_a_step_apart():
    tree = VesselTree(np.zeros((2, 3)), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 2.2]]), np.array([1.0, 2.0]))
    points, radii = tree.centreline(0.5)
    # 1 mm in 2 steps of 0.5; 2.2 mm in 5 steps of 0.44 (ceil(2.2 / 0.5) = 5); both ends included
    np.testing.assert_allclose(points[:3, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(points[3:, 2], [0.0, 0.44, 0.88, 1.32, 1.76, 2.2])
    np.testing.assert_array_equal(radii, [1.0] * 3 + [2.0] * 6)


def test_lungs_fill_the_cavity_above_the_diaphragm(thorax):
    dome = max(thorax.dome_right, thorax.dome_left)
    middle = (dome + thorax.apex_z) / 2
    lateral = thorax.a - thorax.wall_mm
    points = np.array([[0.8 * lateral, -0.8 * lateral, 0.0, 0.8 * lateral, 0.8 * lateral],
                       [thorax.y0] * 5,
                       [middle, middle, middle, thorax.apex_z + 5, dome - 60]])
    # right and left lung mid-chest; mediastinum; above the apex; under the diaphragm
    np.testing.assert_array_equal(thorax.in_lung(points), [True, True, False, False, False])


def test_breathing_slides_the_lungs_along_the_chest_wall(thorax):
    grid = Grid.covering((64, 64, 72), (256.0, 256.0, 288.0))
    motion = _breathing().draw(np.random.default_rng(0), thorax, grid)
    width = motion.sliding_mm  # 2 voxels of 4 mm
    dome = max(thorax.dome_right, thorax.dome_left)
    wall = thorax.a - thorax.wall_mm
    z = dome + 0.25 * (thorax.apex_z - dome)  # profile = smoothstep(0.75) = 0.84375
    points = np.array([[wall - 3 * width, wall + 3 * width, 0.0], [thorax.y0] * 3, [z, z, thorax.apex_z + 1]])
    v = motion.velocity_mm(points)
    profile = smoothstep(np.array(0.75))
    # inside the pleura the lung follows the diaphragm (-25 mm at full profile), outside the chest wall a tenth
    np.testing.assert_allclose(v[2, :2], [-25 * profile, -2.5 * profile], rtol=0.01)
    # lateral and antero-posterior motion do not slide: smooth across the wall
    assert abs(v[0, 0] - v[0, 1]) < 3 * (6 * width / thorax.a)
    assert abs(v[1, 0] - v[1, 1]) < 1e-9
    # nothing moves above the lung apices
    np.testing.assert_allclose(v[:, 2], 0.0, atol=1e-12)


def test_keypoints_are_whole_voxels_on_vessels_inside_the_lungs(thorax):
    grid = Grid.covering((64, 64, 72), (256.0, 256.0, 288.0))
    motion = _breathing().draw(np.random.default_rng(0), thorax, grid)
    fixed, moving = keypoints(thorax, motion, grid, np.random.default_rng(1), count=150, min_radius_mm=1.0)
    assert len(fixed) == len(moving) == 150
    np.testing.assert_array_equal(fixed, np.rint(fixed))
    fixed_mm = (grid.origin_mm + fixed * np.asarray(grid.spacing)).T
    assert thorax.in_lung(fixed_mm, margin_mm=4.0).all()
    centre, radius = thorax.vessels.centreline(0.25)
    nearest = np.min(np.linalg.norm(fixed_mm.T[:, None] - centre[None, radius >= 1.0], axis=2), axis=1)
    assert nearest.max() < 0.4 * 4.0 + 0.25  # 0.4 voxel of 4 mm, plus the centreline's sampling step
    # expiration moves the lungs up: moving keypoints lie higher (larger axis-2 index) on average
    assert (moving[:, 2] - fixed[:, 2]).mean() > 1.0


def test_expiration_lungs_are_smaller_denser_and_higher(generated_task):
    task = generated_task("thorax_ct")
    for pair_id in task.pair_ids("test"):
        pair = task.load_pair(pair_id)
        inspiration, expiration = pair.fixed, pair.moving
        lungs = [np.isin(case.labels.data, [LEFT_LUNG, RIGHT_LUNG]) for case in (inspiration, expiration)]
        np.testing.assert_array_equal(lungs[0], inspiration.mask.data.astype(bool))
        assert lungs[1].sum() < 0.95 * lungs[0].sum()
        # same air mass in less volume: higher attenuation
        assert np.median(expiration.image.data[lungs[1]]) > np.median(inspiration.image.data[lungs[0]]) + 10
        lowest = [np.flatnonzero(lung.any(axis=(0, 1))).min() for lung in lungs]
        assert lowest[1] > lowest[0]
        # fixed keypoints sit on vessels: far brighter than the lung around them
        kp = inspiration.keypoints.astype(int)
        at_keypoints = inspiration.image.data[kp[:, 0], kp[:, 1], kp[:, 2]]
        assert np.median(at_keypoints) > np.median(inspiration.image.data[lungs[0]]) + 200


def test_thorax_ct_pairs_inspiration_with_expiration_of_the_same_subject(generated_task):
    task = generated_task("thorax_ct", "smoke")
    assert task.description["pairings"] == "paired"
    for pair_id in task.pair_ids("val") + task.pair_ids("test"):
        assert pair_id.fixed.case == pair_id.moving.case
        assert (pair_id.fixed.modality, pair_id.moving.modality) == (0, 1)
        pair = task.load_pair(pair_id)
        assert len(pair.fixed.keypoints) == len(pair.moving.keypoints) > 0


def test_an_unknown_breathing_setting_is_an_error_naming_the_yaml(tmp_path):
    raw = yaml.safe_load(Path(load_spec("thorax_ct").path).read_text())
    raw["settings"]["breathing"]["tidal_mm"] = 3
    path = tmp_path / "thorax_edited.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError, match=r"thorax_edited.yaml: settings do not fit ThoraxSettings .*tidal_mm"):
        generate(load_spec(path), scale="smoke")
