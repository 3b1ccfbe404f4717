"""A conditional generative model of the beating heart after CHeart (Qiao et al., "CHeart: a conditional
spatio-temporal generative model for cardiac anatomy", IEEE TMI 2023, doi:10.1109/TMI.2023.3331982), for the
2D+t and 3D+t label maps of ``tasks.cardiac_population``.

CHeart's design, at phantom size: an encoder of the first frame's label map (one-hot, strided convolutions),
a Gaussian latent, and a recurrent decoder (an LSTM cell) that unrolls the cycle frame by frame, each frame's
label map decoded from the cell's state by transposed convolutions. The clinical conditions (age, sex,
systolic pressure) enter the encoder as constant input channels (as in CHeart), and the decoder's initial
state and every step's input beside the latent; the ablation without conditions (``conditioned=False``) sees
zeros there. The loss is CHeart's: a time-weighted cross-entropy over the frames plus beta KL. The weights rise
linearly from 1 at the first frame to 2 at the last (our choice: later frames are further from what the encoder
saw). With the cross-entropy summed over the pixels (the label maps' negative log-likelihood, ``loss``), beta
is 1, the plain VAE: at CHeart's 0.01 the latent took about 1000 nats and hearts drawn from the prior were far
from the phantom's (Wasserstein distance of the LV cavity area 1500 mm^2 against 880 at beta 1; default-scale
study), with the same completion (Dice 0.879 against 0.881).

Uses: sequence completion (``complete``: the whole cycle from the first frame and the conditions),
generation (``generate``: new latents decoded under given conditions) and ageing
(``complete`` with another age: the subject's latent under changed conditions, as the ageing-heart model of
the same group predicts a subject's anatomy at another age).

Generation draws its latents from a Gaussian fitted to the training subjects' latents after training
(``fit_latents``; ex-post density estimation, Ghosh et al., "From variational to deterministic autoencoders",
ICLR 2020), not from the N(0, I) prior: the encoder's latents do not fill the prior (default-scale study: their
mean 4.3 from the origin, variances 0.9 to 5.4), and prior samples decoded to cycles that did not close (the
median LV cavity of the last frame 10 % over end-diastole's, the phantom's 13 % under it; the early-filling
share 1.05 +- 0.58 against the phantom's 0.54 +- 0.07), against 0.52 +- 0.05 and every heart plausible from the
fitted Gaussian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from regbench.tasks.cardiac_population import REFERENCE_AGE, REFERENCE_BP, Covariates

CLASSES = 4  # background, LV cavity, LV myocardium, RV cavity


def condition_vector(covariates: Sequence[Covariates]) -> torch.Tensor:
    """(B, 3) conditions about 0 with unit-ish spread: age in 20-year units from 50, sex as -1 / +1, systolic
    pressure in 20 mmHg units from 120."""
    return torch.tensor([[(c.age - REFERENCE_AGE) / 20.0, 2.0 * c.male - 1.0, (c.systolic_bp - REFERENCE_BP) / 20.0]
                         for c in covariates], dtype=torch.float32)


@dataclass(frozen=True)
class CHeartSettings:
    """Shape and training of the model.

    Attributes:
        size: side of the square (2D) or cubic (3D) label maps (a power of two, at least 16).
        ndim: 2 for short-axis slices, 3 for volumes.
        frames: frames per cycle.
        latent: dimensions of the latent.
        channels: encoder widths per stride-2 level (the decoder mirrors them).
        hidden: LSTM state size.
        conditioned: whether the conditions reach the model (False: the ablation).
        beta: weight of the KL term (against the cross-entropy summed over the pixels).
        steps, batch, lr: Adam training.
    """

    size: int = 64
    ndim: int = 2
    frames: int = 10
    latent: int = 16
    channels: tuple[int, ...] = (8, 16, 32, 64)
    hidden: int = 128
    conditioned: bool = True
    beta: float = 1.0
    steps: int = 1200
    batch: int = 16
    lr: float = 1e-3

    def as_dict(self) -> dict:
        return asdict(self)


class CHeartNet(nn.Module):
    """first frame (B, CLASSES, *S) and conditions (B, 3) -> latent; latent and conditions -> logits
    (B, T, CLASSES, *S) of every frame (S: ``ndim`` sides of ``size``)."""

    def __init__(self, settings: CHeartSettings) -> None:
        super().__init__()
        self.settings = settings
        levels = len(settings.channels)
        self.coarse = settings.size // 2**levels
        if self.coarse < 1 or settings.size % 2**levels:
            raise ValueError(f"CHeartNet(): size {settings.size} is not divisible by 2^{levels}")
        if settings.ndim not in (2, 3):
            raise ValueError(f"CHeartNet(): ndim must be 2 or 3, got {settings.ndim}")
        conv, transposed = (nn.Conv2d, nn.ConvTranspose2d) if settings.ndim == 2 else (nn.Conv3d, nn.ConvTranspose3d)
        encoder: list[nn.Module] = []
        width = CLASSES + 3  # the label map's one-hot channels and a constant channel per condition
        for out in settings.channels:
            encoder += [conv(width, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width = out
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        flat = width * self.coarse**settings.ndim
        self.posterior = nn.Linear(flat, 2 * settings.latent)
        self.initial = nn.Linear(settings.latent + 3, 2 * settings.hidden)
        self.cell = nn.LSTMCell(settings.latent + 3 + 2, settings.hidden)
        self.to_map = nn.Linear(settings.hidden, flat)
        decoder: list[nn.Module] = []
        widths = list(reversed(settings.channels))
        for index, width_in in enumerate(widths):
            out = widths[index + 1] if index + 1 < len(widths) else widths[-1]
            decoder += [transposed(width_in, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.decoder = nn.Sequential(*decoder, conv(widths[-1], CLASSES, 3, padding=1))
        self.top = widths[0]
        # the latents ``generate`` draws: N(mean, scale scale^T), the prior until ``fit_latents``
        self.register_buffer("latent_mean", torch.zeros(settings.latent))
        self.register_buffer("latent_scale", torch.eye(settings.latent))

    def _conditions(self, conditions: torch.Tensor) -> torch.Tensor:
        return conditions if self.settings.conditioned else torch.zeros_like(conditions)

    def encode(self, first: torch.Tensor, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | first frame, conditions)."""
        planes = self._conditions(conditions).view(*conditions.shape, *([1] * self.settings.ndim))
        planes = planes.expand(-1, -1, *first.shape[2:])
        mean, log_var = self.posterior(self.encoder(torch.cat([first, planes], dim=1))).chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)

    def decode(self, latent: torch.Tensor, conditions: torch.Tensor, frames: int) -> torch.Tensor:
        """Logits of ``frames`` frames of one beat, unrolled by the LSTM cell from the latent and conditions."""
        given = torch.cat([latent, self._conditions(conditions)], dim=1)
        hidden, cell = torch.tanh(self.initial(given)).chunk(2, dim=1)
        outputs = []
        for frame in range(frames):
            angle = torch.full((latent.shape[0], 1), 2 * math.pi * frame / frames, device=latent.device)
            hidden, cell = self.cell(torch.cat([given, torch.sin(angle), torch.cos(angle)], dim=1), (hidden, cell))
            coarse = self.to_map(hidden).view(-1, self.top, *([self.coarse] * self.settings.ndim))
            outputs.append(self.decoder(F.leaky_relu(coarse, 0.2)))
        return torch.stack(outputs, dim=1)

    def forward(self, first: torch.Tensor, conditions: torch.Tensor,
                frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the reconstructed cycle from a sampled latent, and the posterior's mean and log-variance."""
        mean, log_var = self.encode(first, conditions)
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        return self.decode(latent, conditions, frames), mean, log_var


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    """(B, *S) integer labels -> (B, CLASSES, *S) float one-hot."""
    return F.one_hot(labels.long(), CLASSES).movedim(-1, 1).float()


def time_weights(frames: int) -> torch.Tensor:
    """The cross-entropy weight of each frame: 1 at the first rising linearly to 2 at the last, mean 1.5."""
    return torch.linspace(1.0, 2.0, frames)


def loss(net: CHeartNet, sequences: torch.Tensor, conditions: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """CHeart's loss on label sequences (B, T, *S): (total, weighted cross-entropy, KL) for one batch, per
    subject. The cross-entropy is summed over each frame's pixels (the label map's negative log-likelihood, so
    the KL weighs against a whole map, not one pixel: as a mean per pixel with beta 0.01 the latent collapsed
    to 4 nats and the model drew about the mean heart), weighted over time and summed over the frames."""
    frames = sequences.shape[1]
    logits, mean, log_var = net(one_hot(sequences[:, 0]), conditions, frames)
    per_pixel = F.cross_entropy(logits.flatten(0, 1), sequences.flatten(0, 1).long(), reduction="none")
    per_frame = per_pixel.sum(dim=tuple(range(1, per_pixel.dim()))).view(-1, frames)
    cross_entropy = (per_frame * time_weights(frames)).sum(dim=1).mean()
    kl = (-0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(dim=1)).mean()
    return cross_entropy + net.settings.beta * kl, float(cross_entropy.detach()), float(kl.detach())


def train(settings: CHeartSettings, sequences: np.ndarray, covariates: Sequence[Covariates], *,
          seed: int = 0) -> tuple[CHeartNet, np.ndarray]:
    """Train on label sequences (N, T, *S) of subjects with ``covariates``: the network and the loss log
    (steps, 3: total, cross-entropy, KL)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = CHeartNet(settings)
    data = torch.as_tensor(sequences, dtype=torch.uint8)
    conditions = condition_vector(covariates)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.steps)
    log = np.zeros((settings.steps, 3))
    for step in range(settings.steps):
        batch = torch.randint(len(data), (settings.batch,), generator=generator)
        total, cross_entropy, kl = loss(net, data[batch], conditions[batch])
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        schedule.step()
        log[step] = float(total.detach()), cross_entropy, kl
    return fit_latents(net.eval(), data, conditions), log


@torch.no_grad()
def fit_latents(net: CHeartNet, sequences: torch.Tensor, conditions: torch.Tensor, *, chunk: int = 32) -> CHeartNet:
    """Fit the Gaussian that ``generate`` draws from to the posteriors of the training subjects (B, T, *S): the
    mean of their means, and the covariance of the means plus the mean posterior variance (the mixture of the
    posteriors, moment-matched)."""
    means, variances = [], []
    for start in range(0, len(sequences), chunk):
        mean, log_var = net.encode(one_hot(sequences[start:start + chunk, 0]), conditions[start:start + chunk])
        means.append(mean)
        variances.append(log_var.exp())
    mean, variance = torch.cat(means), torch.cat(variances)
    covariance = torch.atleast_2d(torch.cov(mean.T)) + torch.diag(variance.mean(dim=0))
    net.latent_mean.copy_(mean.mean(dim=0))
    net.latent_scale.copy_(torch.linalg.cholesky(covariance))
    return net


@torch.no_grad()
def complete(net: CHeartNet, first: np.ndarray, covariates: Sequence[Covariates], frames: int) -> np.ndarray:
    """The most likely cycle (N, T, *S) from each first frame (N, *S) under ``covariates``: the
    posterior mean decoded (with other covariates than the subject's: the subject under other conditions)."""
    conditions = condition_vector(covariates)
    mean, _ = net.encode(one_hot(torch.as_tensor(first)), conditions)
    return net.decode(mean, conditions, frames).argmax(dim=2).numpy().astype(np.uint8)


@torch.no_grad()
def generate(net: CHeartNet, covariates: Sequence[Covariates], frames: int, *, seed: int = 0) -> np.ndarray:
    """New cycles (N, T, *S) under ``covariates``, one latent each from the fitted Gaussian (``fit_latents``)."""
    generator = torch.Generator().manual_seed(seed)
    standard = torch.randn(len(covariates), net.settings.latent, generator=generator)
    latent = net.latent_mean + standard @ net.latent_scale.T
    return net.decode(latent, condition_vector(covariates), frames).argmax(dim=2).numpy().astype(np.uint8)
