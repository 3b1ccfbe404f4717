"""Small hand-built Learn2Reg datasets for the metric tests (no dependence on the task generators)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from regbench import io
from regbench.dataset import Task, describe, image_relpath, read_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.image import Image, LabelMap, affine_from_spacing
from regbench.pair import Case, CaseId, PairId


def smooth_labels(rng: np.random.Generator, shape: tuple[int, ...], n_labels: int, *, sigma: float = 3.0,
                  ) -> np.ndarray:
    """Labels 0..n_labels as the argmax of n_labels + 1 smooth random fields (blobby regions that tile the grid)."""
    fields = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in range(n_labels + 1)])
    return np.argmax(fields, axis=0).astype(np.int16)


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], *, amplitude: float, sigma: float = 4.0,
                 ) -> np.ndarray:
    """A smooth random displacement (*shape, ndim) whose largest component is ``amplitude`` voxels."""
    comps = [ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in shape]
    field = np.stack(comps, axis=-1)
    return amplitude * field / np.abs(field).max()


def build_dataset(root: Path, rng: np.random.Generator, *, shape: tuple[int, ...] = (20, 24, 18), n_labels: int = 4,
                  n_pairs: int = 2, n_keypoints: int = 0, masks: bool = False,
                  spacing: tuple[float, ...] | None = None, groundtruth: bool = False,
                  modalities: tuple[int, int] = (0, 1)) -> Task:
    """A dataset of ``n_pairs`` validation pairs (case i, modality 0 -> modality 1) with random smooth labels,
    optional masks (a box 3 voxels inside the border), keypoints and ground-truth fields."""
    ndim = len(shape)
    spacing = spacing or (1.0,) * ndim
    affine = affine_from_spacing(spacing)
    name = "Toy"
    cases: dict[str, Case] = {}
    pairs: list[dict[str, str]] = []
    truths: dict[PairId, Displacement] = {}
    for index in range(1, n_pairs + 1):
        moving_index = index if modalities[0] != modalities[1] else index + n_pairs  # inter-subject pairs
        ids = [CaseId(index, modalities[0]), CaseId(moving_index, modalities[1])]
        truth = smooth_field(rng, shape, amplitude=2.0)
        fixed_points = rng.uniform(3, np.array(shape) - 4, size=(n_keypoints, ndim))
        for case_id in ids:
            image = Image(rng.standard_normal(shape).astype(np.float32), affine)
            labels = LabelMap(smooth_labels(rng, shape, n_labels), affine) if n_labels else None
            mask = None
            if masks:
                box = np.zeros(shape, dtype=np.int16)
                box[tuple(slice(3, n - 3) for n in shape)] = 1
                mask = LabelMap(box, affine)
            points = None
            if n_keypoints:
                moved = fixed_points + np.stack([ndimage.map_coordinates(truth[..., c], fixed_points.T, order=1)
                                                 for c in range(ndim)], axis=1)
                points = fixed_points if case_id == ids[0] else moved
            cases[image_relpath(name, case_id)] = Case(case_id, image, labels, mask, points)
        pairs.append({"fixed": image_relpath(name, ids[0]), "moving": image_relpath(name, ids[1])})
        if groundtruth:
            truths[PairId(*ids)] = Displacement(truth.astype(np.float32))
    description = describe(
        name, ndim=ndim, shape=shape, modality={m: "MR" for m in modalities},
        labels={k: f"region{k}" for k in range(1, n_labels + 1)},
        training=[{"image": path} for path in cases], test=[], registration_val=pairs, registration_test=[],
        pairings="paired")
    write_dataset(root, description, cases, truths)
    return read_dataset(root)


@pytest.fixture
def make_dataset(tmp_path: Path):
    """``make_dataset(rng, **options)`` -> Task written under a fresh temporary folder (see ``build_dataset``)."""
    counter = iter(range(1000))

    def make(rng: np.random.Generator, **options) -> Task:
        return build_dataset(tmp_path / f"dataset{next(counter)}", rng, **options)

    return make


REFERENCE_SEED = 20261124


def write_reference_submission(root: Path) -> tuple[Task, Path]:
    """A small masked dataset with labels and keypoints (anisotropic spacing) and two random smooth fields:
    a gentle one as ``.nii.gz`` under the long name, a folding one as ``.npz`` under the short name.

    ``test_evaluate.py`` holds what the official evaluation.py computes on exactly these files.
    """
    rng = np.random.default_rng(REFERENCE_SEED)
    task = build_dataset(root / "dataset", rng, shape=(24, 20, 22), n_labels=5, n_pairs=2, n_keypoints=40,
                         masks=True, spacing=(1.5, 1.2, 2.0))
    first, second = task.pair_ids("val")
    disp_dir = root / "disp"
    io.write_disp(disp_dir / f"{first.disp_stem}.nii.gz",
                  Displacement(smooth_field(rng, task.shape, amplitude=3.0, sigma=3.0).astype(np.float32)))
    io.write_disp(disp_dir / f"{second.short_disp_stem}.npz",
                  Displacement(smooth_field(rng, task.shape, amplitude=6.0, sigma=2.0).astype(np.float32)))
    return task, disp_dir


@pytest.fixture
def reference_submission(tmp_path: Path) -> tuple[Task, Path]:
    """(task, disp_dir) of ``write_reference_submission`` in a fresh temporary folder."""
    return write_reference_submission(tmp_path / "reference")
