"""voxelmorph: training lowers the loss and gives a network that beats identity and its untrained self on
unseen pairs, deterministically; the semi-supervised, diffeomorphic and multi-modal variants train too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.advchain import AdvChain
from regbench.dataset import describe, image_relpath, read_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.method import LOSS_LOG
from regbench.methods.voxelmorph import VoxelMorphParams
from regbench.pair import Case, CaseId, PairId
from regbench.registry import get_method
from regbench.spatial import jacobian_det
from regbench.tasks.synth import exp_velocity, random_velocity

SHAPE = (64, 56)
TRAINING = 8  # pairs; one more is held out for validation


def _shared_field() -> np.ndarray:
    """(2, *SHAPE) a smooth diffeomorphic displacement: 1.7 voxels long on average, 3.5 at most."""
    rng = np.random.default_rng(11)
    return exp_velocity(random_velocity(rng, SHAPE, sigma=max(SHAPE) / 6, amplitude=3.0))


def _paired_task(root, synthetic_pair, *, multimodal: bool):
    """Blob phantoms of ``TRAINING + 1`` subjects, each with a fixed (_0000) and a moving (_0001) image that
    differ by one smooth deformation (``_shared_field``) shared by all subjects (a motion pattern a network can learn from a
    few pairs in seconds, as cardiac or breathing motion is shared across patients); the anatomy differs
    from subject to subject. The last subject is the validation pair."""
    field = _shared_field()
    cases, entries, pairs = {}, [], []
    for index in range(TRAINING + 1):
        pair, _ = synthetic_pair(SHAPE, seed=40 + index, disp=field, multimodal=multimodal)
        names = []
        for case, modality in ((pair.fixed, 0), (pair.moving, 1)):
            relative = image_relpath("Blobs", CaseId(index + 1, modality))
            cases[relative] = Case(CaseId(index + 1, modality), case.image, case.labels)
            names.append(relative)
        entries += [{"image": r, "label": r.replace("images", "labels")} for r in names]
        pairs.append({"fixed": names[0], "moving": names[1]})
    description = describe("Blobs", ndim=2, shape=SHAPE, modality={0: "MR" if multimodal else "CT", 1: "CT"},
                           labels={1: "a", 2: "b", 3: "c", 4: "d"}, training=entries, test=[],
                           registration_val=pairs[-1:], registration_test=[], pairings="paired")
    write_dataset(root, description, cases)
    return read_dataset(root)


@pytest.fixture(scope="module")
def blob_tasks(tmp_path_factory, synthetic_pair):
    return {multimodal: _paired_task(tmp_path_factory.mktemp("blobs") / str(multimodal), synthetic_pair,
                                     multimodal=multimodal)
            for multimodal in (False, True)}


def _training_ids() -> list[PairId]:
    return [PairId(CaseId(i, 0), CaseId(i, 1)) for i in range(1, TRAINING + 1)]


def _trained(task, tmp_path, **overrides):
    """Smoke-sized network trained for 150 steps; registration without fine-tuning or affine pre-alignment,
    so that what is scored is what the network learned."""
    method = get_method("voxelmorph", scale="smoke", seed=5, iterations=150, instance_iterations=0, prealign=False,
                        **overrides)
    method.train(task, _training_ids(), tmp_path)
    return method


@pytest.mark.parametrize("variant", [{}, {"diffeomorphic": True}, {"dice_weight": 1.0}],
                         ids=["unsupervised", "diffeomorphic", "semi-supervised"])
def test_training_lowers_the_loss_and_beats_identity_and_the_untrained_network(variant, blob_tasks, tmp_path,
                                                                                mean_dice):
    task = blob_tasks[False]
    method = _trained(task, tmp_path, **variant)
    pair = task.load_pair(task.pair_ids("val")[0])
    untrained = get_method("voxelmorph", scale="smoke", seed=5, instance_iterations=0, prealign=False, **variant)
    with pytest.warns(RuntimeWarning, match="untrained network"):
        untrained_dice = mean_dice(pair, untrained.register(pair))
    identity = mean_dice(pair, Displacement.zeros(SHAPE))
    trained = method.register(pair)
    dice = mean_dice(pair, trained)
    losses = np.loadtxt(tmp_path / LOSS_LOG, delimiter=",", skiprows=1)[:, 1]
    # Measured (150 steps of one random pair each): identity 0.844, untrained 0.844 (flow layer ~N(0, 1e-5)),
    # trained 0.887 / 0.881 (diffeomorphic) / 0.892 (semi-supervised); the mean loss of the last 30 steps is
    # 0.57 / 0.57 / 0.86 times that of the first 30 (the Dice term falls more slowly); no folding.
    assert losses.shape == (150,)
    assert losses[-30:].mean() < 0.9 * losses[:30].mean()
    assert dice > identity + 0.03 and dice > untrained_dice + 0.03, f"{dice:.3f} vs {identity:.3f}"
    assert (jacobian_det(trained.to_torch(torch.float64)) <= 0).double().mean() < 0.01


def test_multimodal_pairs_train_with_mind_and_beat_identity(blob_tasks, tmp_path, mean_dice):
    task = blob_tasks[True]
    method = _trained(task, tmp_path)
    pair = task.load_pair(task.pair_ids("val")[0])
    assert method.similarity_name(pair) == "mind"
    # Measured: identity 0.844, trained 0.890 (MIND-SSC descriptors across a sin() intensity map).
    assert mean_dice(pair, method.register(pair)) > mean_dice(pair, Displacement.zeros(SHAPE)) + 0.03


def test_instance_optimisation_improves_the_pair_and_keeps_the_network(blob_tasks, tmp_path, mean_dice):
    task = blob_tasks[False]
    trained = _trained(task, tmp_path, validate_every=0)  # the last state: not one selected on this very pair
    pair = task.load_pair(task.pair_ids("val")[0])
    tuned = get_method("voxelmorph", scale="smoke", seed=5, instance_iterations=20, prealign=False)
    tuned.load_state_dict(trained.state_dict())
    before = {key: value.clone() for key, value in tuned.state_dict().items()}
    # Measured: 0.887 from the trained network alone, 0.906 after 20 steps fine-tuning a copy on the pair.
    assert mean_dice(pair, tuned.register(pair)) > mean_dice(pair, trained.register(pair)) + 0.01
    for key, value in tuned.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_prealignment_composes_the_affine_field_with_the_network_field(synthetic_pair):
    # A shifted and zoomed pair: an untrained network outputs ~0 (flow layer ~N(0, 1e-5)), so the result must
    # be the affine stage's field itself, composed on the full grid, and far from zero.
    shape = (40, 36)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    pair, _ = synthetic_pair(shape, seed=3, disp=2.5 + 0.06 * (grid - 18.0))
    method = get_method("voxelmorph", scale="smoke", instance_iterations=0)
    with pytest.warns(RuntimeWarning, match="untrained network"):
        disp = method.register(pair)
    affine = get_method("affine", scale="smoke").register(pair)
    assert np.abs(affine.data).mean() > 1.5
    np.testing.assert_allclose(disp.data, affine.data, atol=1e-3)


def test_training_is_deterministic_for_a_seed(blob_tasks, tmp_path):
    task = blob_tasks[False]
    first = get_method("voxelmorph", scale="smoke", seed=2)
    first.train(task, _training_ids(), tmp_path / "a")
    again = get_method("voxelmorph", scale="smoke", seed=2)
    again.train(task, _training_ids(), tmp_path / "b")
    assert first.loss_history == again.loss_history
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_semi_supervised_training_asks_for_labels():
    assert not get_method("voxelmorph").capabilities.needs_labels
    assert get_method("voxelmorph", dice_weight=0.01).capabilities.needs_labels
    assert not type(get_method("voxelmorph", dice_weight=0.01)).capabilities.needs_labels


def test_presets_and_errors(blob_tasks, tmp_path):
    paper = VoxelMorphParams.paper()
    assert (paper.encoder, paper.decoder, paper.final, paper.lr, paper.downsize) == \
        ((16, 32, 32, 32), (32, 32, 32), (32, 16, 16), 1e-4, 1)
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        VoxelMorphParams(similarity="mi")
    with pytest.raises(RegbenchError, match="nothing to save"):
        get_method("voxelmorph").state_dict()
    trained = get_method("voxelmorph", scale="smoke", iterations=1)
    trained.train(blob_tasks[False], _training_ids()[:1], tmp_path)
    with pytest.raises(RegbenchError, match="does not fit the configured network"):
        get_method("voxelmorph").load_state_dict(trained.state_dict())


@pytest.mark.parametrize("augment", ["random", "adversarial"])
def test_augmented_training_trains_on_perturbed_pairs_deterministically(augment, blob_tasks, tmp_path, mean_dice):
    task = blob_tasks[False]
    plain = _trained(task, tmp_path / "none")
    first = _trained(task, tmp_path / "a", augment=augment, augment_budget=0.3)
    again = _trained(task, tmp_path / "b", augment=augment, augment_budget=0.3)
    assert first.loss_history == again.loss_history and first.loss_history != plain.loss_history
    pair = task.load_pair(task.pair_ids("val")[0])
    # still learns the shared motion on clean pairs (identity 0.844, no augmentation 0.887)
    assert mean_dice(pair, first.register(pair)) > mean_dice(pair, Displacement.zeros(SHAPE)) + 0.02


def test_the_adversarial_chain_raises_the_training_loss_above_the_random_one(blob_tasks, tmp_path):
    task = blob_tasks[False]
    trained = _trained(task, tmp_path)
    method = get_method("voxelmorph", scale="smoke", seed=5, instance_iterations=0, prealign=False,
                        augment="adversarial", augment_steps=3)
    method.load_state_dict(trained.state_dict())
    pair = task.load_pair(_training_ids()[0])
    fixed, moving = (method.prepare(case, [], pair.id) for case in (pair.fixed, pair.moving))
    chain = AdvChain(tuple(moving.image.shape[2:]), budget=method.params.augment_budget)
    losses = {}
    for augment in ("random", "adversarial"):
        method.params = method.params.replace(augment=augment)
        method.rng = np.random.default_rng(0)  # the same random chain is the adversarial search's start
        with torch.no_grad():
            losses[augment] = method.training_loss(method.net, fixed, method.augmented(chain, fixed, moving, "lncc"),
                                                   "lncc").item()
    assert losses["adversarial"] > losses["random"], losses


def test_augmentation_settings_are_checked():
    with pytest.raises(RegbenchError, match="augment must be one of"):
        VoxelMorphParams(augment="mixup")
    with pytest.raises(RegbenchError, match="augment_budget"):
        VoxelMorphParams(augment="random", augment_budget=0.0)
