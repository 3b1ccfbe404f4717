"""Training's shared parts: validation scores the network every few steps (Dice, or TRE on a keypoint task) and
the best state is the one kept, validating does not change what training draws, the cosine schedule ends at
zero, and settings are checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from regbench.errors import RegbenchError
from regbench.metrics.tre import tre_mm
from regbench.pretrained import VALIDATION_LOG
from regbench.registry import get_method
from regbench.runner import training_pairs
from regbench.training import TrainingMonitor, TrainingParams, pair_dice, pair_tre, validation_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained(task, workdir, **settings):
    method = get_method("voxelmorph", scale="smoke", threads=1, **settings)
    method.train(task, training_pairs(task), workdir)
    return method


def test_validation_scores_every_few_steps_and_keeps_the_best_state(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    method = _trained(task, tmp_path, validate_every=10, validation_pairs=2)
    curve = pd.read_csv(tmp_path / VALIDATION_LOG)
    assert curve["step"].tolist() == [10, 20, 30] and curve["best"].sum() == 1
    best = curve[curve["best"]].iloc[0]
    assert best["dice"] == curve["dice"].max()
    pairs = validation_pairs(task, 2)
    classes = sorted(set(task.labels) - {0})
    kept = sum(pair_dice(p, method.register(p.blind()).to_torch(), classes) for p in pairs) / len(pairs)
    assert kept == pytest.approx(best["dice"], abs=1e-6)  # the state registering now is the best one validated


def test_on_a_keypoint_task_the_state_of_least_tre_is_kept(generated_task, tmp_path):
    task = generated_task("thorax_ct", "smoke")
    method = _trained(task, tmp_path, validate_every=10, validation_pairs=1)
    curve = pd.read_csv(tmp_path / VALIDATION_LOG)
    assert curve["tre_mm"].notna().all() and curve["dice"].notna().all()
    assert curve.loc[curve["best"], "tre_mm"].iloc[0] == curve["tre_mm"].min()
    pair = validation_pairs(task, 1)[0]
    kept = pair_tre(pair, method.register(pair.blind()).to_torch())
    assert kept == pytest.approx(curve["tre_mm"].min(), abs=1e-6)


def test_validation_tre_follows_the_evaluations_tre(generated_task):
    pair = validation_pairs(generated_task("thorax_ct", "smoke"), 1)[0]
    shape = pair.fixed.image.shape
    grid = np.stack(np.meshgrid(*[np.linspace(0, np.pi, n) for n in shape], indexing="ij"))
    disp = 2.0 * np.sin(grid + np.arange(len(shape)).reshape(-1, *[1] * len(shape)))  # smooth, a few voxels
    official = tre_mm(pair.fixed.keypoints, pair.moving.keypoints, np.moveaxis(disp, 0, -1),
                      pair.moving.image.spacing).mean()
    ours = pair_tre(pair, torch.as_tensor(disp)[None])
    assert ours == pytest.approx(official, rel=0.01)
    still = pair_tre(pair, torch.zeros(1, len(shape), *shape))
    expected = np.linalg.norm((pair.fixed.keypoints - pair.moving.keypoints) * pair.moving.image.spacing, axis=1)
    assert still == pytest.approx(expected.mean())


def test_validating_does_not_change_what_training_draws(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    plain = _trained(task, tmp_path / "plain", validate_every=0)
    validated = _trained(task, tmp_path / "validated", validate_every=7)
    assert plain.loss_history == validated.loss_history
    assert pd.read_csv(tmp_path / "plain" / VALIDATION_LOG).empty


def test_the_cosine_schedule_falls_to_zero_over_the_steps(generated_task):
    method = get_method("voxelmorph", scale="smoke", lr_schedule="cosine", lr=0.01)
    optimiser = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=method.params.lr)
    monitor = TrainingMonitor(method, generated_task("cardiac_mr", "smoke"), [optimiser], 8, validate=False)
    rates = []
    for _ in range(8):
        optimiser.step()
        monitor.step()
        rates.append(optimiser.param_groups[0]["lr"])
    assert rates[3] == pytest.approx(0.005) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_settings_are_checked():
    with pytest.raises(RegbenchError, match="lr_schedule must be one of constant, cosine"):
        TrainingParams(lr_schedule="step")
    with pytest.raises(RegbenchError, match="validate_every >= 0"):
        TrainingParams(validate_every=-1)
