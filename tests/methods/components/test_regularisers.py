"""Regularisers against hand-derived values (as MONAI's diffusion-loss tests do)."""

from __future__ import annotations

import torch

from regbench.methods.components.regularisers import bending_loss, diffusion_loss, jacobian_loss
from regbench.spatial import identity_grid


def _field(*components: torch.Tensor) -> torch.Tensor:
    return torch.stack(components)[None]


def test_diffusion_of_a_constant_field_is_zero():
    assert diffusion_loss(torch.full((1, 3, 6, 7, 5), 2.5, dtype=torch.float64)) == 0


def test_diffusion_of_a_linear_ramp_is_the_squared_frobenius_norm():
    # u = (2 x0 + 3 x1, -x1): du0/dx0 = 2, du0/dx1 = 3, du1/dx1 = -1, so 4 + 9 + 1 = 14 at every voxel
    # (central and one-sided differences of a linear function are exact).
    x = identity_grid((8, 9), dtype=torch.float64)[0]
    u = _field(2 * x[0] + 3 * x[1], -x[1])
    torch.testing.assert_close(diffusion_loss(u), torch.tensor(14.0, dtype=torch.float64))
    weight = torch.full((1, 1, 8, 9), 0.5, dtype=torch.float64)
    torch.testing.assert_close(diffusion_loss(u, weight=weight), torch.tensor(7.0, dtype=torch.float64))


def test_bending_of_an_affine_field_is_zero_and_of_a_parabola_is_four():
    x = identity_grid((7, 8, 6), dtype=torch.float64)[0]
    affine = _field(0.1 * x[0] - 0.3 * x[2] + 2, 0.2 * x[1], x[0] + x[1] + x[2])
    assert bending_loss(affine).abs() < 1e-12
    # u0 = x0^2: d2u0/dx0^2 = 2 -> 2^2 = 4 per voxel. Central differences are exact for a parabola, away from
    # the two border voxels on each side where one-sided differences enter.
    parabola = _field(x[0] ** 2, torch.zeros_like(x[0]), torch.zeros_like(x[0]))
    energy = bending_loss(parabola, reduction="none")[0]
    torch.testing.assert_close(energy[2:-2], torch.full_like(energy[2:-2], 4.0))


def test_jacobian_penalty_is_zero_without_folding_and_measures_a_fold():
    x = identity_grid((6, 7), dtype=torch.float64)[0]
    stretch = _field(0.5 * x[0], torch.zeros_like(x[0]))  # det J = 1.5 everywhere
    assert jacobian_loss(stretch) == 0
    # u0 = -2 x0 mirrors axis 0: J = diag(-1, 1), det J = -1, so relu(0 - (-1)) = 1 (and 1.5 with margin 0.5).
    mirror = _field(-2 * x[0], torch.zeros_like(x[0]))
    torch.testing.assert_close(jacobian_loss(mirror), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(jacobian_loss(mirror, margin=0.5), torch.tensor(1.5, dtype=torch.float64))
