"""bayesian: the ELBO rises, the posterior mean registers, samples stay diffeomorphic, and the posterior is
wide where the images carry no information.

Methods run on one thread: these tests check the algorithm, and one thread keeps their time steady on a busy
machine (the contract test uses the default).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.methods.bayesian import BayesianParams, virtual_decimation
from regbench.pair import Case, CaseId, Pair, PairId
from regbench.registry import get_method
from regbench.spatial import jacobian_det

SHAPE = (48, 40)
# The VI alone, on pairs that need no affine start (the paper's setting).
FAST = {"level": 1, "iterations": 150, "posterior_samples": 12, "output_samples": 12, "prealign": False}


def det_j(field: np.ndarray) -> torch.Tensor:
    """det J of a (*spatial, ndim) field."""
    return jacobian_det(Displacement(field).to_torch(torch.float64))


@pytest.mark.parametrize("sgld", [False, True], ids=["vi", "vi+sgld"])
def test_registers_a_pair_with_diffeomorphic_samples(synthetic_pair, mean_dice, sgld):
    pair, _ = synthetic_pair(SHAPE, seed=21, amplitude=3.0)
    settings = dict(FAST, sgld_iterations=60, sgld_burn_in=20, sgld_thin=10, chains=3) if sgld else FAST
    method = get_method("bayesian", threads=1, **settings)
    torch.manual_seed(0)
    posterior = method.posterior(pair)
    disp = method.summarise(posterior, SHAPE)
    elbo = np.asarray(posterior.elbo)
    # The ELBO (log-likelihood scaled by virtual decimation, plus prior and entropy) rises from about -2100
    # to about -700 on this pair.
    assert elbo[-10:].mean() > elbo[:10].mean() + 1000
    identity = mean_dice(pair, Displacement.zeros(SHAPE))
    dice = mean_dice(pair, disp)
    # Measured: identity 0.80, posterior mean 0.96 (VI and VI + SGLD); det J of the mean and of every sample
    # stays above 0.2.
    assert dice >= identity + 0.1, f"Dice {dice:.3f} vs identity {identity:.3f}"
    assert disp.samples.shape == (12, *SHAPE, 2) and disp.std.shape == (*SHAPE, 2)
    np.testing.assert_allclose(disp.std, disp.samples.std(0), rtol=1e-4, atol=1e-6)
    assert float(det_j(disp.data).min()) > 0
    assert all(float(det_j(sample).min()) > 0 for sample in disp.samples)
    assert disp.std.mean() > 0.01 and np.ptp(disp.samples, axis=0).max() > 0.1  # the samples differ


def test_samples_spread_where_the_images_are_uniform():
    # Textured blobs on the left half, one constant grey on the right: the right half tells the likelihood
    # nothing (its LCC features vanish), so there the posterior is the smoothness prior, conditioned on the
    # left half through the field's smoothness. The pair is a 1.5-voxel shift of the texture.
    rng = np.random.default_rng(5)
    height, width = 40, 48
    texture = ndimage.gaussian_filter(rng.standard_normal((height, width)), 1.5)
    moving = np.full((height, width), 0.5)
    moving[:, : width // 2] = 0.5 + texture[:, : width // 2] / np.abs(texture).max() / 2
    fixed = ndimage.shift(moving, (1.5, 0.0), order=1, mode="nearest")
    pair = Pair(PairId(CaseId(1, 0), CaseId(2, 0)), Case(CaseId(1, 0), Image(fixed.astype(np.float32))),
                Case(CaseId(2, 0), Image(moving.astype(np.float32))))
    disp = get_method("bayesian", threads=1, **FAST).register(pair)
    std = np.linalg.norm(disp.std, axis=-1)
    textured, uniform = std[4:-4, 4:16].mean(), std[4:-4, 32:44].mean()
    # Measured: 0.28 voxels on the texture, 1.9 on the uniform half.
    assert uniform > 3 * textured, f"std {uniform:.3f} (uniform) vs {textured:.3f} (textured)"


def _shift_and_zoom(shape: tuple[int, ...], *, zoom: float, shift: float) -> np.ndarray:
    """u(x) = (zoom - 1) (x - c) + shift, c the grid centre: an affine misalignment."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    centre = ((np.array(shape) - 1) / 2).reshape(-1, *[1] * len(shape))
    return (zoom - 1) * (grid - centre) + shift


def test_multimodal_pair_needs_mind_and_the_affine_start(synthetic_pair, mean_dice):
    # A multi-modal pair (non-monotone intensity map) misaligned by a zoom and a shift plus a smooth bend.
    field = _shift_and_zoom(SHAPE, zoom=1.08, shift=3.0)
    field[0] += 2.0 * np.sin(np.pi * np.arange(SHAPE[1]) / (SHAPE[1] - 1))
    pair, _ = synthetic_pair(SHAPE, seed=4, disp=field, multimodal=True)
    settings = {"level": 1, "iterations": 150, "posterior_samples": 12}
    method = get_method("bayesian", threads=1, **settings)
    assert method.similarity_name(pair) == "mind"  # "auto" on a multi-modal pair
    default = method.register(pair)
    scores = {"identity": mean_dice(pair, Displacement.zeros(SHAPE)), "default": mean_dice(pair, default)}
    for similarity in ("lcc", "mind"):
        alone = get_method("bayesian", threads=1, prealign=False, similarity=similarity, **settings)
        scores[f"{similarity} alone"] = mean_dice(pair, alone.register(pair))
    # Measured: identity 0.347; the VI alone with LCC 0.405 (the intensities do not correspond), with MIND
    # 0.496 (the misalignment is too large for the smooth prior); affine start then MIND 0.792 (affine alone
    # 0.860: the bend is small next to the zoom and shift).
    assert scores["mind alone"] > scores["lcc alone"] + 0.05, scores
    assert scores["default"] > scores["identity"] + 0.3 and scores["default"] > scores["mind alone"] + 0.2, scores
    assert float(det_j(default.data).min()) > 0


def test_the_affine_start_lets_the_grids_differ(synthetic_pair):
    pair, _ = synthetic_pair(SHAPE, seed=3)
    cropped = Case(pair.moving.id, Image(pair.moving.image.data[2:-2, 1:-3]))
    two_grids = Pair(pair.id, pair.fixed, cropped)
    disp = get_method("bayesian", scale="smoke", threads=1).register(two_grids)
    assert disp.data.shape == (*SHAPE, 2) and np.isfinite(disp.data).all() and disp.std.shape == (*SHAPE, 2)
    with pytest.raises(RegbenchError, match="share one grid without prealign"):
        get_method("bayesian", scale="smoke", threads=1, prealign=False).register(two_grids)


def test_virtual_decimation_is_one_for_white_noise_and_small_for_smooth_residuals():
    rng = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 64, 64, generator=rng)
    smooth = torch.nn.functional.avg_pool2d(white, 5, stride=1, padding=2)
    assert float(virtual_decimation(white)) == pytest.approx(1.0)
    # A 5 x 5 box average: lag-one correlation 0.8 per axis, alpha = -(2 / pi) log 0.8 = 0.14 (two axes).
    assert float(virtual_decimation(smooth)) == pytest.approx(-(2 / np.pi) * np.log(0.8), abs=0.03)


@pytest.mark.parametrize("overrides, message", [
    ({"similarity": "mi"}, "similarity"),
    ({"mind_dilation": 0}, "mind_dilation"),
    ({"window": 4}, "odd"),
    ({"noise_std": 0.1, "noise_components": 3}, "single Gaussian"),
    ({"sgld_iterations": 10, "sgld_burn_in": 10}, "exceed"),
    ({"output_samples": 40}, "exceeds"),
    ({"chains": 0}, "chains"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(RegbenchError, match=message):
        BayesianParams().replace(**overrides)
