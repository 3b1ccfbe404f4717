"""one_hot and soft_dice_loss: known overlaps, gradients that reach the warped maps."""

from __future__ import annotations

import pytest
import torch

from regbench.methods.components.overlap import one_hot, soft_dice_loss


def test_one_hot_has_a_channel_per_listed_label_only():
    labels = torch.tensor([[0, 1, 3], [3, 3, 2]])[None, None]
    masks = one_hot(labels, [1, 3])
    assert masks.shape == (1, 2, 2, 3) and masks.dtype == torch.float32
    torch.testing.assert_close(masks[0, 0], torch.tensor([[0.0, 1, 0], [0, 0, 0]]))
    torch.testing.assert_close(masks[0, 1], torch.tensor([[0.0, 0, 1], [1, 1, 0]]))  # label 2 has no channel


def test_soft_dice_loss_of_known_overlaps():
    a = torch.zeros(1, 2, 4, 4)
    a[0, 0, :2] = 1  # 8 voxels
    a[0, 1, :, :1] = 1  # 4 voxels
    b = torch.zeros(1, 2, 4, 4)
    b[0, 0, 1:3] = 1  # 8 voxels, 4 shared with a: Dice 2 * 4 / 16 = 0.5
    b[0, 1, :, :1] = 1  # identical: Dice 1
    # Loss = 1 - mean(0.5, 1) = 0.25, up to the eps terms (1e-5 / 16).
    assert soft_dice_loss(a, b).item() == pytest.approx(0.25, abs=1e-5)
    assert soft_dice_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)


def test_a_label_absent_from_both_counts_as_a_match():
    empty = torch.zeros(1, 1, 5, 5, 5)
    assert soft_dice_loss(empty, empty).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_moves_the_warped_map_towards_the_fixed_one():
    fixed = torch.zeros(1, 1, 6)[..., None].repeat(1, 1, 1, 6)
    fixed[..., :3, :] = 1
    warped = torch.full_like(fixed, 0.5, requires_grad=True)
    soft_dice_loss(fixed, warped).backward()
    # Raising the warped membership inside the fixed label lowers the loss there; outside it raises it.
    assert (warped.grad[..., :3, :] < 0).all() and (warped.grad[..., 3:, :] > 0).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        soft_dice_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="expected \\(B, 1, \\*spatial\\)"):
        one_hot(torch.zeros(1, 2, 4, 4, dtype=torch.long), [1])
