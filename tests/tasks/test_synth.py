"""Random fields and noise for the synthetic tasks: known distributions."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.tasks import synth


def test_rician_noise_is_the_magnitude_of_complex_gaussian_noise(rng):
    sigma = 0.1
    # Without noise the magnitude of a real image is its absolute value.
    image = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(synth.rician_noise(rng, image, sigma=0.0), np.abs(image))
    # No signal: Rayleigh, mean sigma sqrt(pi / 2) = 0.1253, std 0.655 sigma, so the mean of 2e5 draws has a
    # standard error of 1.5e-4; the bound is about 3.5 of those.
    background = synth.rician_noise(rng, np.zeros(200_000), sigma=sigma)
    assert background.min() >= 0
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), abs=5e-4)
    # Signal 10 sigma: nearly Gaussian, mean sqrt(A^2 + sigma^2) = 1.00499 to O(sigma^4 / A^3), std sigma
    # (standard error of the mean 2.2e-4).
    bright = synth.rician_noise(rng, np.ones(200_000), sigma=sigma)
    assert bright.mean() == pytest.approx(np.sqrt(1 + sigma**2), abs=1e-3)
    assert bright.std() == pytest.approx(sigma, rel=0.01)
