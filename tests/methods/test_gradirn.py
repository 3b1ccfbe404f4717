"""gradirn: a step is a true SSD gradient step in voxel units, training on cardiac MR lowers the loss and beats
identity and the untrained network, and the trained network descends its energy step by step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.method import LOSS_LOG
from regbench.methods.components.similarity import mse_loss
from regbench.methods.gradirn import GraDIRN, GraDIRNParams, Level
from regbench.pair import Case, CaseId, Pair, PairId
from regbench.registry import get_method
from regbench.runner import training_pairs
from regbench.spatial import warp


def _regulariser_off(method: GraDIRN, ndim: int) -> None:
    """Build the network and zero the last layer of every R (weights and bias), so R outputs exactly 0."""
    method.net = method.build(ndim)
    for regulariser in method.net.regularisers:
        nn.init.zeros_(regulariser[-1].weight)


def test_a_step_without_regulariser_is_minus_tau_times_the_ssd_gradient():
    rng = np.random.default_rng(3)
    shape = (12, 10)
    method = GraDIRN(GraDIRNParams(factors=(1,), repeats=(1,), layers=2, channels=3), dtype=torch.float64)
    _regulariser_off(method, 2)
    fixed, moving = (torch.from_numpy(rng.uniform(0, 1, (1, 1, *shape))) for _ in range(2))
    # Start where every sample point x + u lies inside a cell (fractional part 0.3..0.7), where the bilinear
    # SSD is a quadratic in each component of u, so central differences give its gradient exactly.
    disp = torch.from_numpy(0.5 + 0.2 * np.tanh(rng.standard_normal((1, 2, *shape))))
    stepped = method.net.step(0, Level(fixed, fixed), Level(moving, moving), disp, mse_loss, create_graph=False)

    def per_voxel_ssd(u: torch.Tensor) -> torch.Tensor:
        return (warp(moving, u, padding="border") - fixed).square()

    h = 1e-3
    gradient = torch.zeros_like(disp)
    for axis in range(2):
        offset = torch.zeros_like(disp)
        offset[:, axis] = h
        # Each voxel's term depends on its own u only, so one perturbation of the whole field gives all of them.
        gradient[:, axis] = ((per_voxel_ssd(disp + offset) - per_voxel_ssd(disp - offset)) / (2 * h))[:, 0]
    tau = method.net.step_size(0)
    # tau = 0.5 / (1 step + 1) * 10, the reference's initial step size.
    assert tau.item() == pytest.approx(2.5)
    assert gradient.abs().max() > 0.1
    torch.testing.assert_close(stepped, disp - tau * gradient, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("axis", "shift"), [(0, 1.5), (1, -1.2)])
def test_unrolled_ssd_descent_recovers_a_shift_in_voxels_through_the_pyramid(axis, shift):
    """With R off the network is gradient descent on SSD; on an image that varies along one axis only it must
    find the shift that made the fixed image, in Learn2Reg's convention and voxel units, and nothing across."""
    shape = (40, 36)
    profile = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(shape[axis]) / 24)
    moving = np.broadcast_to(profile.reshape([-1 if a == axis else 1 for a in range(2)]), shape).astype(np.float64)
    true = np.zeros((1, 2, *shape))
    true[0, axis] = shift
    fixed = warp(torch.from_numpy(moving)[None, None], torch.from_numpy(true), padding="border")[0, 0].numpy()
    pair = Pair(PairId(CaseId(1, 0), CaseId(2, 0)), Case(CaseId(1, 0), Image(fixed.astype(np.float32))),
                Case(CaseId(2, 0), Image(moving.astype(np.float32))))
    method = GraDIRN(GraDIRNParams(factors=(2, 1), repeats=(20, 20), layers=2, channels=1))
    _regulariser_off(method, 2)
    with torch.no_grad():
        method.net.tau.fill_(2.0)  # 20 per step once scaled: converges in 20 steps where the profile is steep
    disp = np.moveaxis(method.register(pair).data, -1, 0)
    slope = np.abs(np.gradient(profile))
    steep = (slope > 0.5 * slope.max())[4:-4]  # away from the border, where the profile has gradient
    along = np.take(disp[axis][4:-4, 4:-4], np.flatnonzero(steep), axis=axis)
    # Measured: mean 1.533 and -1.219, largest error 0.16 (the per-image percentile normalisation differs a
    # little between the two images); across the profile the field stays below 1e-4.
    assert along.mean() == pytest.approx(shift, abs=0.06)
    assert np.abs(along - shift).max() < 0.25
    assert np.abs(disp[1 - axis]).max() < 1e-3


def test_prealignment_composes_the_affine_field_with_the_network_field(synthetic_pair):
    # A shifted and zoomed pair; with R off and tau 0 the network outputs exactly zero, so with ``prealign`` the
    # result must be the affine stage's field itself, composed on the full grid, and far from zero.
    shape = (40, 36)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    pair, _ = synthetic_pair(shape, seed=3, disp=2.5 + 0.06 * (grid - 18.0))
    method = get_method("gradirn", scale="smoke", prealign=True)
    _regulariser_off(method, 2)
    with torch.no_grad():
        method.net.tau.zero_()
    affine = get_method("affine", scale="smoke").register(pair)
    assert np.abs(affine.data).mean() > 1.5
    np.testing.assert_allclose(method.register(pair).data, affine.data, atol=1e-4)
    moving = torch.as_tensor(pair.moving.image.data, dtype=method.dtype)[None, None]
    differentiable = method.differentiable_forward(pair, moving)
    np.testing.assert_allclose(np.moveaxis(differentiable[0].detach().numpy(), 0, -1), affine.data, atol=1e-4)


@pytest.fixture(scope="module")
def cardiac(generated_task, tmp_path_factory):
    """Smoke-scale cardiac_mr (64x64, two training subjects) and a network trained on it: two levels of two
    steps each, 60 steps of training."""
    task = generated_task("cardiac_mr", scale="smoke")
    workdir = tmp_path_factory.mktemp("gradirn")
    method = get_method("gradirn", scale="smoke", seed=1, repeats=(2, 2), iterations=60)
    method.train(task, training_pairs(task), workdir)
    pairs = [task.load_pair(pair_id) for pair_id in task.pair_ids("test")]
    return task, method, pairs, workdir


def test_training_lowers_the_loss_and_beats_identity_and_the_untrained_network(cardiac, mean_dice):
    _, method, pairs, workdir = cardiac
    untrained = get_method("gradirn", scale="smoke", seed=1, repeats=(2, 2))
    with pytest.warns(RuntimeWarning, match="untrained network"):
        untrained_dice = np.mean([mean_dice(pair, untrained.register(pair)) for pair in pairs])
    identity = np.mean([mean_dice(pair, Displacement.zeros(pair.fixed.image.shape)) for pair in pairs])
    dice = np.mean([mean_dice(pair, method.register(pair)) for pair in pairs])
    losses = np.loadtxt(workdir / LOSS_LOG, delimiter=",", skiprows=1)[:, 1]
    # Measured (two test pairs; training seeds 1, 2, 3): identity 0.392, untrained (4 plain SSD steps) 0.57,
    # trained 0.73 / 0.81 / 0.77; the mean loss of the last 15 steps is 0.45-0.53 times that of the first 15.
    assert losses.shape == (60,)
    assert losses[-15:].mean() < 0.8 * losses[:15].mean()
    assert dice > identity + 0.2 and dice > untrained_dice + 0.1, f"{dice:.3f} vs {identity:.3f}, {untrained_dice:.3f}"
    assert (method.net.tau > 0).all()


def test_the_trained_network_descends_its_energy_step_by_step(cardiac):
    _, method, pairs, _ = cardiac
    for pair in pairs:
        energies = method.step_energies(pair)
        # Identity, then after each of the 4 unrolled steps; measured (seeds 1-3): every step lowers the SSD,
        # to 0.14-0.33 of where it started.
        assert energies.shape == (5,)
        assert (np.diff(energies) < 0).all(), energies
        assert energies[-1] < 0.5 * energies[0]


def test_multimodal_pairs_descend_the_ssd_of_mind_descriptors(synthetic_pair):
    pair, _ = synthetic_pair((48, 40), seed=4, multimodal=True)
    method = get_method("gradirn", scale="smoke", repeats=(4, 4))
    assert method.similarity_name(pair) == "mind"
    with pytest.warns(RuntimeWarning, match="untrained network"):
        energies = method.step_energies(pair)
    # The untrained network is 8 plain gradient steps on the SSD of MIND-SSC descriptors (R is ~0); measured:
    # 0.123 falling at every step to 0.074.
    assert energies.shape == (9,)
    assert (np.diff(energies) < 0).all(), energies
    assert energies[-1] < 0.7 * energies[0]


def test_training_with_prealignment_learns_from_the_affinely_aligned_pairs(cardiac, tmp_path):
    task, _, pairs, _ = cardiac
    method = get_method("gradirn", scale="smoke", seed=1, iterations=6, validate_every=0, prealign=True)
    aligned = []
    method.initial_alignment = lambda pair: aligned.append(pair.id) or GraDIRN.initial_alignment(method, pair)
    method.train(task, training_pairs(task), tmp_path)
    assert aligned and set(aligned) <= set(training_pairs(task))  # each training pair met is aligned once
    assert len(aligned) == len(set(aligned)) and np.isfinite(method.loss_history).all()


def test_training_is_deterministic_for_a_seed(cardiac, tmp_path):
    task = cardiac[0]
    runs = []
    for name in ("a", "b"):
        method = get_method("gradirn", scale="smoke", seed=2, iterations=5)
        method.train(task, training_pairs(task), tmp_path / name)
        runs.append(method)
    assert runs[0].loss_history == runs[1].loss_history
    for key, value in runs[0].state_dict().items():
        torch.testing.assert_close(runs[1].state_dict()[key], value, rtol=0, atol=0)


def test_presets_and_errors(cardiac, synthetic_pair):
    paper = GraDIRNParams.paper()
    assert (paper.factors, paper.repeats, paper.layers, paper.channels, paper.step_size, paper.step_scale,
            paper.smoothness, paper.lr) == ((4, 2, 1), (3, 3, 3), 5, 32, 0.5, 10.0, 0.01, 1e-4)
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        GraDIRNParams(similarity="ssd")
    with pytest.raises(RegbenchError, match="one iteration count per pyramid factor"):
        GraDIRNParams(factors=(2, 1), repeats=(3,))
    with pytest.raises(RegbenchError, match="nothing to save"):
        get_method("gradirn").state_dict()
    with pytest.raises(RegbenchError, match="does not fit the configured network"):
        get_method("gradirn").load_state_dict(cardiac[1].state_dict())
    pair, _ = synthetic_pair((24, 20))
    moved = Pair(pair.id, pair.fixed, Case(pair.moving.id, Image(np.zeros((20, 24), np.float32))))
    with pytest.raises(RegbenchError, match="needs one grid for both"):
        cardiac[1].register(moved)


@pytest.mark.parametrize("augment", ["random", "adversarial"])
def test_augmented_training_trains_on_perturbed_pairs_deterministically(augment, cardiac, tmp_path, mean_dice):
    task, plain, pairs, _ = cardiac
    runs = []
    for name in ("a", "b"):
        method = get_method("gradirn", scale="smoke", seed=1, repeats=(2, 2), iterations=60, augment=augment,
                            augment_budget=0.3)
        method.train(task, training_pairs(task), tmp_path / name)
        runs.append(method)
    assert runs[0].loss_history == runs[1].loss_history and runs[0].loss_history != plain.loss_history
    for key, value in runs[0].state_dict().items():
        torch.testing.assert_close(runs[1].state_dict()[key], value, rtol=0, atol=0)
    identity = np.mean([mean_dice(pair, Displacement.zeros(pair.fixed.image.shape)) for pair in pairs])
    dice = np.mean([mean_dice(pair, runs[0].register(pair)) for pair in pairs])
    # Still learns the motion on clean pairs; measured: identity 0.392, no augmentation 0.731, random 0.651,
    # adversarial 0.665.
    assert dice > identity + 0.2, f"{dice:.3f} vs {identity:.3f}"


def test_the_adversarial_chain_raises_the_training_loss_above_the_random_one_and_leaves_the_network(cardiac):
    task, trained, _, _ = cardiac
    method = get_method("gradirn", scale="smoke", seed=1, repeats=(2, 2), augment="adversarial", augment_steps=3)
    method.load_state_dict(trained.state_dict())
    before = {key: value.clone() for key, value in method.state_dict().items()}
    pair = task.load_pair(training_pairs(task)[0])
    similarity = method.similarity_name(pair)
    fixed, moving = method.pyramid(pair.fixed.image, similarity), method.normalised(pair.moving.image)
    chain = method.params.chain(moving.shape[2:])  # on the full grid: the chain acts before the pyramid
    losses = {}
    for augment in ("random", "adversarial"):
        method.params = method.params.replace(augment=augment)
        method.rng = np.random.default_rng(0)  # the same random chain is the adversarial search's start
        with torch.no_grad():
            levels = method.augmented(chain, fixed, moving, similarity)
            losses[augment] = method.training_loss(method.net, fixed, levels, similarity).item()
        assert [level.image.shape for level in levels] == [level.image.shape for level in fixed]
    unperturbed = method.training_loss(method.net, fixed, method.levels(moving, similarity), similarity).item()
    assert losses["adversarial"] > losses["random"] and losses["random"] != unperturbed, (losses, unperturbed)
    assert all(parameter.grad is None for parameter in method.net.parameters())
    for key, value in method.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_augmentation_settings_are_checked():
    with pytest.raises(RegbenchError, match="augment must be one of"):
        GraDIRNParams(augment="mixup")
    with pytest.raises(RegbenchError, match="augment_budget"):
        GraDIRNParams(augment="random", augment_budget=0.0)
    assert get_method("gradirn", augment="adversarial", augment_steps=2).params.augment_steps == 2
