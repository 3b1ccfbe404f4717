"""Random smooth deformations, bias fields and noise for the synthetic task generators.

Everything draws from a ``numpy.random.Generator`` passed in, so a seed fixes every byte. Fields are numpy
arrays in the core's torch layout without the batch axis: (ndim, *spatial), voxel units.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from regbench import spatial


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], *, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit maximum magnitude (a smooth random scalar field)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="reflect")
    return noise / max(np.abs(noise).max(), 1e-12)


def random_velocity(rng: np.random.Generator, shape: tuple[int, ...], *, sigma: float,
                    amplitude: float) -> np.ndarray:
    """A smooth random stationary velocity field (ndim, *shape) whose largest component is ``amplitude`` voxels."""
    return np.stack([amplitude * smooth_noise(rng, shape, sigma=sigma) for _ in shape])


def _torch(field: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(field, dtype=np.float64))[None]


def exp_velocity(velocity: np.ndarray) -> np.ndarray:
    """The diffeomorphic displacement exp(v) by scaling and squaring (float64 for accurate inverses)."""
    return spatial.integrate_svf(_torch(velocity))[0].numpy()


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``first(x) + second(x + first(x))``, see ``regbench.spatial.compose``."""
    return spatial.compose(_torch(first), _torch(second))[0].numpy()


def inter_subject_groundtruth(velocity_fixed: np.ndarray, velocity_moving: np.ndarray) -> np.ndarray:
    """True displacement between two subjects made from one template.

    Subject s samples the template at x + exp(v_s)(x). A fixed voxel x shows the template point
    x + exp(v_f)(x); the moving subject shows that point at exp(-v_m) of it, so u = exp(v_f) o exp(-v_m).
    """
    return compose(exp_velocity(velocity_fixed), exp_velocity(-velocity_moving))


def coordinates(disp: np.ndarray) -> np.ndarray:
    """Absolute sampling positions x + u(x), shape (ndim, *spatial)."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in disp.shape[1:]], indexing="ij"))
    return grid + disp


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], *, strength: float) -> np.ndarray:
    """A smooth multiplicative intensity bias (MR inhomogeneity), exp of a smooth field in [-strength, strength]."""
    return np.exp(strength * smooth_noise(rng, shape, sigma=max(shape) / 4))


def add_noise(rng: np.random.Generator, image: np.ndarray, *, sigma: float) -> np.ndarray:
    """Additive Gaussian noise of standard deviation ``sigma`` (in the image's intensity units)."""
    return image + sigma * rng.standard_normal(image.shape)


def rician_noise(rng: np.random.Generator, image: np.ndarray, *, sigma: float) -> np.ndarray:
    """Magnitude-image noise as MR reconstructs it: ``|image + n_re + i n_im|`` with both n ~ N(0, sigma^2).

    Rician where there is signal (about Gaussian above a few sigma) and Rayleigh in the empty background,
    so the image stays non-negative like a real magnitude image.
    """
    real = image + sigma * rng.standard_normal(image.shape)
    return np.hypot(real, sigma * rng.standard_normal(image.shape))
