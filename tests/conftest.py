"""Shared fixtures: synthetic tasks generated once per session, at the scale the tests need."""

from __future__ import annotations

import os

# Before torch loads: idle OpenMP threads otherwise spin, which slows everything on a machine with few cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from regbench.dataset import Task, read_dataset  # noqa: E402
from regbench.tasks.generate import make_task  # noqa: E402


@pytest.fixture(scope="session")
def generated_task(tmp_path_factory: pytest.TempPathFactory):
    """``generated_task(name, scale="default")`` -> Task, written once per session and reused."""
    cache: dict[tuple[str, str], Task] = {}

    def get(name: str, scale: str = "default") -> Task:
        if (name, scale) not in cache:
            root = tmp_path_factory.mktemp(f"{name}_{scale}") / name
            cache[name, scale] = read_dataset(make_task(name, root, scale=scale))
        return cache[name, scale]

    return get


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """(evaluation table, output folder) of the generative model's ``run_study("smoke")``, run once: for the
    tests of its outputs and for making ``cardiac_cohort`` without training a model each time."""
    from regbench.generative.study import run_study

    out = tmp_path_factory.mktemp("generative")
    return run_study("smoke", out), out


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20261124)


def data_dir() -> Path:
    return Path(__file__).parent / "data"


def _blob_labels(rng, shape: tuple[int, ...], n_labels: int):
    """Labels 1..n_labels tiling an ellipsoidal body (the argmax of smooth random fields), 0 outside."""
    import numpy as np

    from regbench.tasks.synth import smooth_noise

    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    fields = np.stack([smooth_noise(rng, shape, sigma=max(shape) / 10) for _ in range(n_labels)])
    return np.where((grid**2).sum(0) < 0.8**2, 1 + fields.argmax(0), 0).astype(np.int16)


def _synthetic_pair(shape: tuple[int, ...], *, seed: int = 0, field_seed: int | None = None,
                    amplitude: float = 3.0, disp=None, multimodal: bool = False, n_labels: int = 4):
    """A pair with a known answer: fixed = moving warped by a smooth diffeomorphic field (or by ``disp``).

    The moving image is a blob label map with a random intensity per label, fine texture, blur and noise.
    The fixed image samples it at x + u(x), so ``u`` is exactly the Learn2Reg displacement of the pair; with
    ``multimodal`` its intensities go through sin(2.5 pi v), a non-monotone map, and its modality is "MR".
    ``disp`` is (ndim, *shape) in voxels; otherwise a random field whose largest velocity is ``amplitude``,
    drawn after the image from the same generator, or from its own one if ``field_seed`` is given (so
    several fixed images can be deformed copies of one moving image, like subjects of one population).
    Returns (Pair, Displacement).
    """
    import numpy as np
    import torch
    from scipy import ndimage

    from regbench import spatial
    from regbench.displacement import Displacement
    from regbench.image import Image, LabelMap
    from regbench.pair import Case, CaseId, Pair, PairId
    from regbench.tasks.synth import exp_velocity, random_velocity, smooth_noise

    rng = np.random.default_rng(seed)
    labels = _blob_labels(rng, shape, n_labels)
    values = np.concatenate([[0.0], rng.uniform(0.2, 1.0, n_labels)])
    texture = 0.1 * smooth_noise(rng, shape, sigma=1.5)
    image = ndimage.gaussian_filter(values[labels] + texture * (labels > 0), 1.0)
    image = (image + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    if disp is None:
        field_rng = rng if field_seed is None else np.random.default_rng(field_seed)
        disp = exp_velocity(random_velocity(field_rng, shape, sigma=max(shape) / 6, amplitude=amplitude))
    u = torch.from_numpy(np.asarray(disp, dtype=np.float64))[None]
    warped = spatial.warp(torch.from_numpy(image.astype(np.float64))[None, None], u, padding="border")[0, 0]
    fixed_image = warped.numpy().astype(np.float32)
    if multimodal:
        fixed_image = np.sin(2.5 * np.pi * fixed_image)
    fixed_labels = spatial.warp_labels(torch.from_numpy(labels.astype(np.int64))[None, None], u)[0, 0].numpy()
    fixed = Case(CaseId(1, 0), Image(fixed_image), LabelMap(fixed_labels.astype(np.int16)),
                 modality="MR" if multimodal else "CT")
    moving = Case(CaseId(2, 0), Image(image), LabelMap(labels), modality="CT")
    truth = Displacement(np.moveaxis(np.asarray(disp), 0, -1).astype(np.float32))
    return Pair(PairId(fixed.id, moving.id), fixed, moving), truth


@pytest.fixture(scope="session")
def synthetic_pair():
    """``synthetic_pair(shape, *, seed=0, field_seed=None, amplitude=3.0, disp=None, multimodal=False)``
    -> (Pair, true field).

    Small pairs with a known displacement for method tests, independent of the task generators.
    """
    return _synthetic_pair


@pytest.fixture(scope="session")
def mean_dice():
    """``mean_dice(pair, disp)``: the official mean Dice over the fixed image's labels after warping by ``disp``."""
    import numpy as np

    from regbench.metrics.dice import case_mean, dice_per_label
    from regbench.metrics.warp import warp_labels_nearest

    def score(pair, disp) -> float:
        fixed, moving = pair.fixed.labels.data, pair.moving.labels.data
        labels = [int(k) for k in np.unique(fixed) if k != 0]
        return case_mean(dice_per_label(fixed, moving, warp_labels_nearest(moving, disp.data), labels))

    return score


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (numbers repeat exactly only at a fixed thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
