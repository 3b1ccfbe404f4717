"""The contract every registered method keeps, checked at smoke scale on small synthetic pairs.

Parametrised over ``list_methods()``, so a new file in ``methods/`` is checked without touching this one:
right shape and dtype, finite, deterministic for a seed, better than identity on an easy pair, and for
learning methods a train -> save -> load round trip that reproduces the trained method's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from regbench.dataset import describe, image_relpath, read_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.pair import Case, CaseId, PairId
from regbench.registry import list_methods, method_class

METHODS = list_methods()
TRAINABLE = [name for name in METHODS if method_class(name).trainable]
SHAPES = {2: (48, 40), 3: (24, 28, 20)}  # unequal sides catch swapped axes


def _easy_field(shape: tuple[int, ...]) -> np.ndarray:
    """A 1.5-voxel shift along every axis plus a 5 % zoom about the centre plus a smooth 2-voxel bend: an
    affine part that ``affine`` can find and a non-rigid part for the others; no folding (|grad| << 1)."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    centre = (np.array(shape, dtype=np.float64) - 1) / 2
    field = 1.5 + 0.05 * (grid - centre.reshape(-1, *[1] * len(shape)))
    field[0] += 2.0 * np.sin(np.pi * grid[1] / (shape[1] - 1))
    return field


@pytest.fixture(scope="module")
def easy_pairs(synthetic_pair):
    return {ndim: synthetic_pair(shape, seed=ndim, disp=_easy_field(shape))[0] for ndim, shape in SHAPES.items()}


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", METHODS)
def test_output_is_a_finite_field_on_the_fixed_grid_and_deterministic(name, ndim, easy_pairs):
    cls = method_class(name)
    if ndim not in cls.capabilities.dims:
        pytest.skip(f"{name} does not register {ndim}D images")
    pair = easy_pairs[ndim]
    method = cls.configure(scale="smoke", seed=7)
    first, seconds = method.timed_register(pair)
    again = cls.configure(scale="smoke", seed=7).register(pair)
    assert isinstance(first, Displacement)
    assert first.data.shape == (*SHAPES[ndim], ndim) and first.data.dtype == np.float32
    assert np.isfinite(first.data).all()
    assert seconds > 0
    np.testing.assert_array_equal(first.data, again.data)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", [name for name in METHODS if name != "identity"])
def test_beats_identity_on_an_easy_pair(name, ndim, easy_pairs, mean_dice):
    cls = method_class(name)
    if ndim not in cls.capabilities.dims or cls.trainable:
        pytest.skip("trainable methods are scored after training, below" if cls.trainable else f"not {ndim}D")
    pair = easy_pairs[ndim]
    baseline = mean_dice(pair, Displacement.zeros(SHAPES[ndim]))
    score = mean_dice(pair, cls.configure(scale="smoke").register(pair))
    # The pair is misaligned by 1.5-4 voxels; identity scores 0.54 (2D) and 0.25 (3D), affine 0.8-0.93.
    assert score >= baseline + 0.05, f"{name} {ndim}D: Dice {score:.3f} vs identity {baseline:.3f}"


def _tiny_task(root, ndim: int, synthetic_pair):
    """A Learn2Reg folder of five subjects, random deformations of one blob template (three for training),
    and one validation pair between the other two."""
    shape = SHAPES[ndim]
    cases, names = {}, []
    for index in range(5):
        pair, _ = synthetic_pair(shape, seed=100, field_seed=index, amplitude=2.0)
        case_id = CaseId(index + 1, 0)
        relative = image_relpath("Tiny", case_id)
        cases[relative] = Case(case_id, pair.fixed.image, pair.fixed.labels)
        names.append(relative)
    entries = [{"image": r, "label": r.replace("images", "labels")} for r in names]
    description = describe("Tiny", ndim=ndim, shape=shape, modality={0: "CT"}, labels={1: "a", 2: "b", 3: "c", 4: "d"},
                           training=entries, test=[], registration_val=[{"fixed": names[3], "moving": names[4]}],
                           registration_test=[], pairings="unpaired")
    write_dataset(root, description, cases)
    return read_dataset(root)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", TRAINABLE)
def test_trains_saves_and_loads_to_the_same_output(name, ndim, tmp_path, synthetic_pair, mean_dice):
    cls = method_class(name)
    if ndim not in cls.capabilities.dims:
        pytest.skip(f"{name} does not register {ndim}D images")
    task = _tiny_task(tmp_path / "task", ndim, synthetic_pair)
    training = [PairId(CaseId(f, 0), CaseId(m, 0)) for f in (1, 2, 3) for m in (1, 2, 3) if f != m]
    method = cls.configure(scale="smoke", seed=3)
    method.train(task, training, tmp_path / "work")
    method.save(tmp_path / "model.pt")
    loaded = cls.configure(scale="smoke", seed=3)
    loaded.load(tmp_path / "model.pt")
    pair = task.load_pair(task.pair_ids("val")[0])
    trained = method.register(pair)
    np.testing.assert_array_equal(loaded.register(pair).data, trained.data)
    assert mean_dice(pair, trained) > mean_dice(pair, Displacement.zeros(SHAPES[ndim]))
