"""AdvChain: every transformation within its bound at every budget, gradients reach every parameter, and the
perturbed pair's ground truth (true field, labels, keypoints) stays exact, checked with scipy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from regbench.advchain import (INVERSE_ITERATIONS, AdvChain, ChainBounds, bspline_weights, perturb_pair,
                                     perturbed_truth)
from regbench.pair import Pair

BUDGETS = (0.0, 0.3, 1.0)
SHAPES = {2: (20, 24), 3: (12, 14, 10)}
SPACINGS = {2: (1.0, 1.5), 3: (1.0, 1.5, 0.8)}
NOTHING = ChainBounds(bias=0, gamma=0, contrast=0, noise=0, rotation=0, scale=0, shift=0, elastic=0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(ndim: int, seed: int = 0) -> torch.Tensor:
    """A smooth positive image (1, 1, *shape) with intensities in about [100, 300] (not [0, 1])."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal(SHAPES[ndim]), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return torch.as_tensor(100 + 200 * smooth)[None, None]


def _chain(ndim: int, budget: float, seed: int, **bounds: float) -> AdvChain:
    """A random chain of the test grid in which only the named transformations are switched on."""
    chain = AdvChain(SHAPES[ndim], SPACINGS[ndim], bounds=dataclasses.replace(NOTHING, **bounds), budget=budget)
    return chain.randomise_(np.random.default_rng(seed))


def _normalised(image: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """Intensities as the chain sees them: the reference's [min, max] mapped to [0, 1]."""
    low, high = reference.min(), reference.max()
    return ((image - low) / (high - low))[0, 0].detach().numpy()


def _affine_of(chain: AdvChain) -> tuple[np.ndarray, np.ndarray]:
    """(A, t mm) recovered from the dense geometric displacement by least squares: T(y) = c + D^-1 (A D (y - c)
    + t), so the physical map D (T(y) - c) = A D (y - c) + t is affine in D (y - c)."""
    ndim = chain.ndim
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in chain.shape], indexing="ij"))
    mapped = grid + chain.geometric_disp()[0].detach().numpy()
    centre = np.array([(n - 1) / 2 for n in chain.shape]).reshape(ndim, *([1] * ndim))
    spacing = np.array(chain.spacing).reshape(ndim, *([1] * ndim))
    source = ((grid - centre) * spacing).reshape(ndim, -1).T
    target = ((mapped - centre) * spacing).reshape(ndim, -1).T
    solution, *_ = np.linalg.lstsq(np.column_stack([source, np.ones(len(source))]), target, rcond=None)
    return solution[:ndim].T, solution[ndim]


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("seed", [1, 2, 3])
class TestBounds:
    """Each transformation alone, drawn at random: its realised effect never exceeds budget x bound."""

    def test_bias(self, ndim, budget, seed):
        image = _image(ndim)
        perturbed = _chain(ndim, budget, seed, bias=0.3).apply(image)
        u, u_perturbed = _normalised(image, image), _normalised(perturbed, image)
        ratio = u_perturbed[u > 0.05] / u[u > 0.05]  # u' = u b(x), so the ratio is the bias field
        assert np.abs(np.log(ratio)).max() <= 0.3 * budget + 1e-9

    def test_gamma(self, ndim, budget, seed):
        image = _image(ndim)
        u = _normalised(image, image)
        perturbed = _normalised(_chain(ndim, budget, seed, gamma=0.3).apply(image), image)
        inside = (u > 0.05) & (u < 0.95)
        gamma = np.log(perturbed[inside]) / np.log(u[inside])  # u' = u^gamma
        assert np.abs(np.log(gamma)).max() <= 0.3 * budget + 1e-9

    def test_contrast(self, ndim, budget, seed):
        image = _image(ndim)
        u = _normalised(image, image)
        perturbed = _normalised(_chain(ndim, budget, seed, contrast=0.2).apply(image), image)
        away = np.abs(u - u.mean()) > 0.05
        factor = (perturbed[away] - u.mean()) / (u[away] - u.mean())  # u' = c (u - mean) + mean
        assert np.abs(np.log(factor)).max() <= 0.2 * budget + 1e-9

    def test_noise(self, ndim, budget, seed):
        image = _image(ndim)
        perturbed = _chain(ndim, budget, seed, noise=0.05).apply(image)
        noise = ((perturbed - image) / (image.max() - image.min())).detach().numpy()
        assert noise.std() <= 0.05 * budget + 1e-12

    def test_rotation(self, ndim, budget, seed):
        matrix, shift = _affine_of(_chain(ndim, budget, seed, rotation=30.0))
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(ndim), atol=1e-9)
        np.testing.assert_allclose(shift, 0, atol=1e-9)
        # total angle of a rotation from its trace (arccos near 1 amplifies rounding to ~1e-6 degrees); in 3D
        # three angles each within the bound add up at most
        angle = np.degrees(np.arccos(np.clip((np.trace(matrix) - (ndim - 2)) / 2, -1, 1)))
        assert angle <= (1 if ndim == 2 else 3) * 30.0 * budget + 1e-4

    def test_scale(self, ndim, budget, seed):
        matrix, shift = _affine_of(_chain(ndim, budget, seed, scale=0.2))
        np.testing.assert_allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9)
        assert np.abs(np.diag(matrix) - 1).max() <= 0.2 * budget + 1e-9
        np.testing.assert_allclose(shift, 0, atol=1e-9)

    def test_shift(self, ndim, budget, seed):
        chain = _chain(ndim, budget, seed, shift=0.1)
        matrix, shift = _affine_of(chain)
        np.testing.assert_allclose(matrix, np.eye(ndim), atol=1e-9)
        extent = np.array([(n - 1) * s for n, s in zip(chain.shape, chain.spacing)])
        assert np.all(np.abs(shift) <= 0.1 * budget * extent + 1e-9)

    def test_elastic(self, ndim, budget, seed):
        chain = _chain(ndim, budget, seed, elastic=1.5)
        assert chain.elastic_bound <= 1.5
        assert chain.geometric_disp().abs().max() <= chain.elastic_bound * budget + 1e-12


@pytest.mark.parametrize("ndim", [2, 3])
def test_budget_zero_is_the_identity(ndim, synthetic_pair):
    pair, truth = synthetic_pair(SHAPES[ndim], seed=4)
    chain = AdvChain.for_image(pair.moving.image, budget=0.0).randomise_(np.random.default_rng(0))
    perturbed, new_truth = perturb_pair(_with_keypoints(pair, truth), chain, truth)
    np.testing.assert_allclose(perturbed.moving.image.data, pair.moving.image.data, atol=1e-6)
    np.testing.assert_array_equal(perturbed.moving.labels.data, pair.moving.labels.data)
    np.testing.assert_allclose(new_truth.data, truth.data, atol=1e-6)
    np.testing.assert_allclose(perturbed.moving.keypoints, _with_keypoints(pair, truth).moving.keypoints, atol=1e-9)


def test_unconstrained_zero_is_the_identity():
    chain = AdvChain(SHAPES[2], budget=1.0)
    assert not chain.vector().any()
    torch.testing.assert_close(chain.apply(_image(2)).detach(), _image(2), rtol=1e-12, atol=0)
    assert not chain.geometric_disp().any()


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradients_reach_every_parameter(ndim):
    chain = AdvChain(SHAPES[ndim], SPACINGS[ndim], budget=0.5).randomise_(np.random.default_rng(5))
    weights = torch.as_tensor(np.random.default_rng(6).standard_normal(SHAPES[ndim]))
    truth = torch.zeros((1, ndim, *SHAPES[ndim]), dtype=torch.float64)
    loss = (chain.apply(_image(ndim)) * weights).sum() + perturbed_truth(chain, truth).square().sum()
    loss.backward()
    for name, parameter in chain.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_bspline_weights_are_a_partition_of_unity():
    weights = bspline_weights(17, 4)
    assert weights.shape == (17, 4) and weights.min() >= 0
    np.testing.assert_allclose(weights.sum(1), 1.0)
    # at a control point the cubic B-spline weighs it 4/6 and each neighbour 1/6; the first control point
    # also takes the 1/6 of the repeated one beyond the end
    np.testing.assert_allclose(weights[0], [5 / 6, 1 / 6, 0, 0])
    np.testing.assert_allclose(bspline_weights(13, 4)[4], [1 / 6, 4 / 6, 1 / 6, 0])  # spacing 4: voxel 4


@pytest.mark.parametrize("ndim", [2, 3])
def test_inverse_undoes_the_geometric_map(ndim):
    """T(T^-1(p)) = p for scattered points, T sampled independently with scipy (linear, the warp's order)."""
    chain = AdvChain(SHAPES[ndim], SPACINGS[ndim], budget=1.0).randomise_(np.random.default_rng(7))
    points = np.random.default_rng(8).uniform(2, np.array(SHAPES[ndim]) - 3, (50, ndim))
    arranged = torch.as_tensor(points.T.reshape(1, ndim, -1, *([1] * (ndim - 1))))
    inverse = chain.inverse_points(arranged).reshape(ndim, -1).detach().numpy()
    disp = chain.geometric_disp()[0].detach().numpy()
    inside = np.all((inverse >= 0) & (inverse <= np.array(SHAPES[ndim])[:, None] - 1), axis=0)
    mapped = inverse + np.stack([ndimage.map_coordinates(disp[c], inverse, order=1) for c in range(ndim)])
    assert inside.sum() > 25
    # the elastic part contracts by at least 1/2 per iteration: error below 2^-24 of its bound, plus rounding
    np.testing.assert_allclose(mapped[:, inside], points.T[:, inside], atol=2.0**-INVERSE_ITERATIONS * 2 + 1e-9)


def _scipy_warp_labels(labels: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Nearest-neighbour warp as the official evaluation does it: moving sampled at x + u(x), 0 outside."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in labels.shape], indexing="ij"))
    return ndimage.map_coordinates(labels, grid + np.moveaxis(disp, -1, 0), order=0, mode="constant")


def _dice(fixed: np.ndarray, warped: np.ndarray) -> float:
    labels = [k for k in np.unique(fixed) if k != 0]
    return float(np.mean([2 * np.sum((fixed == k) & (warped == k)) / (np.sum(fixed == k) + np.sum(warped == k))
                          for k in labels]))


@pytest.mark.parametrize("budget", [0.25, 0.5, 1.0])
def test_true_field_still_aligns_the_labels(budget, synthetic_pair):
    """The issue's check: moving labels warped by the composed true field (scipy) match the fixed labels as well
    as before (Dice within 0.01). Organ-sized structures (one body 70 voxels across): the perturbed label map
    is resampled with nearest neighbour once more, which costs small structures more (module docstring)."""
    pair, truth = synthetic_pair((96, 96), seed=3, n_labels=1)
    before = _dice(pair.fixed.labels.data, _scipy_warp_labels(pair.moving.labels.data, truth.data))
    chain = AdvChain.for_image(pair.moving.image, budget=budget).randomise_(np.random.default_rng(11))
    perturbed, new_truth = perturb_pair(pair, chain, truth)
    after = _dice(pair.fixed.labels.data, _scipy_warp_labels(perturbed.moving.labels.data, new_truth.data))
    assert before > 0.99
    assert after >= before - 0.01


@pytest.mark.parametrize("ndim", [2, 3])
def test_true_field_samples_the_perturbed_image_where_the_truth_sampled_the_moving_one(ndim, synthetic_pair):
    """Geometric chain only, smooth image: moving'(x + u'(x)) = moving(x + u(x)) up to linear interpolation."""
    shape = (40, 40) if ndim == 2 else (20, 20, 20)
    pair, truth = synthetic_pair(shape, seed=5)
    smooth = ndimage.gaussian_filter(pair.moving.image.data.astype(np.float64), 2.0)
    moving = dataclasses.replace(pair.moving, image=dataclasses.replace(pair.moving.image, data=smooth))
    pair = Pair(pair.id, pair.fixed, moving)
    geometric = dataclasses.replace(ChainBounds(), bias=0, gamma=0, contrast=0, noise=0)
    chain = AdvChain.for_image(pair.moving.image, bounds=geometric, budget=0.5).randomise_(np.random.default_rng(2))
    perturbed, new_truth = perturb_pair(pair, chain, truth)

    def sample(image: np.ndarray, disp: np.ndarray) -> np.ndarray:
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij"))
        return ndimage.map_coordinates(image, grid + np.moveaxis(disp, -1, 0), order=1, mode="nearest")

    expected, got = sample(smooth, truth.data), sample(perturbed.moving.image.data, new_truth.data)
    unchanged = sample(perturbed.moving.image.data, truth.data)
    inner = tuple(slice(4, -4) for _ in shape)
    span = smooth.max() - smooth.min()
    assert np.abs(got - expected)[inner].max() < 0.03 * span
    assert np.abs(unchanged - expected)[inner].max() > 0.1 * span  # the perturbation did move the image


def _with_keypoints(pair: Pair, truth) -> Pair:
    """The pair with 40 corresponding keypoints: fixed points inside and fixed + u there in the moving image."""
    ndim = pair.ndim
    fixed = np.random.default_rng(9).uniform(3, np.array(pair.fixed.image.shape) - 4, (40, ndim))
    moved = fixed + np.stack([ndimage.map_coordinates(truth.data[..., c].astype(np.float64), fixed.T, order=1)
                              for c in range(ndim)], axis=1)
    return Pair(pair.id, dataclasses.replace(pair.fixed, keypoints=fixed),
                dataclasses.replace(pair.moving, keypoints=moved))


@pytest.mark.parametrize("ndim", [2, 3])
def test_keypoints_move_with_the_true_field(ndim, synthetic_pair):
    """Fixed keypoints moved by the new true field land on the new moving keypoints; the new moving keypoints
    mapped back through T (scipy) are the old ones."""
    pair, truth = synthetic_pair((32, 32) if ndim == 2 else (16, 18, 16), seed=6)
    pair = _with_keypoints(pair, truth)
    chain = AdvChain.for_image(pair.moving.image, budget=0.5).randomise_(np.random.default_rng(3))
    perturbed, new_truth = perturb_pair(pair, chain, truth)
    fixed, new = pair.fixed.keypoints, perturbed.moving.keypoints
    assert new.shape == fixed.shape
    assert np.linalg.norm(new - pair.moving.keypoints, axis=1).mean() > 0.3
    moved = fixed + np.stack([ndimage.map_coordinates(new_truth.data[..., c].astype(np.float64), fixed.T, order=1)
                              for c in range(ndim)], axis=1)
    # the new truth is exact at voxels; between them it is interpolated linearly, as the old one was
    assert np.linalg.norm(moved - new, axis=1).max() < 0.05
    disp = chain.geometric_disp()[0].detach().numpy()
    back = new + np.stack([ndimage.map_coordinates(disp[c], new.T, order=1) for c in range(ndim)], axis=1)
    np.testing.assert_allclose(back, pair.moving.keypoints, atol=1e-6)


def test_draws_are_deterministic(synthetic_pair):
    pair, truth = synthetic_pair((24, 24), seed=1)

    def draw(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chain = AdvChain.for_image(pair.moving.image, budget=0.7).randomise_(np.random.default_rng(seed))
        perturbed, new_truth = perturb_pair(pair, chain, truth)
        return chain.vector(), perturbed.moving.image.data, new_truth.data

    first, again, other = draw(12), draw(12), draw(13)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_vector_round_trip_and_checks():
    chain = AdvChain(SHAPES[3], SPACINGS[3]).randomise_(np.random.default_rng(4))
    vector = chain.vector()
    # 3 angles, 3 scales, 3 shifts, 3 x 4^3 elastic, gamma, contrast, 3^3 bias, noise
    assert vector.shape == (3 + 3 + 3 + 3 * 64 + 1 + 1 + 27 + 1,)
    copy = AdvChain(SHAPES[3], SPACINGS[3]).set_vector(vector)
    copy.noise_pattern.copy_(chain.noise_pattern)
    torch.testing.assert_close(copy.apply(_image(3)).detach(), chain.apply(_image(3)).detach(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="vector of 231 values"):
        chain.set_vector(vector[:-1])


def test_invalid_settings_are_refused(synthetic_pair):
    with pytest.raises(ValueError, match="budget"):
        AdvChain((8, 8), budget=1.5)
    with pytest.raises(ValueError, match="rotation=-1"):
        ChainBounds(rotation=-1)
    with pytest.raises(ValueError, match="control points"):
        ChainBounds(elastic_points=1)
    pair, _ = synthetic_pair((16, 16), seed=0)
    with pytest.raises(ValueError, match=r"chain is for a \(8, 8\) grid"):
        perturb_pair(pair, AdvChain((8, 8)))
