"""Write a synthetic task as a complete Learn2Reg folder plus ``groundtruth/``.

A generator module (``tasks/<generator>.py``) exposes ``generate(spec, scale, rng) -> SyntheticData``: it
draws every random parameter from ``rng`` and returns the cases and the true displacement of each pair.
This module turns that into files, writing into a temporary folder that is renamed at the end, so an
interrupted run never leaves a half-written dataset.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regbench import io
from regbench.dataset import GROUNDTRUTH_DIR, SYNTHETIC_RELEASE, describe, image_relpath, write_dataset
from regbench.displacement import Displacement
from regbench.errors import DatasetError, RegbenchError
from regbench.pair import Case, CaseId, PairId
from regbench.tasks.spec import TaskSpec, load_spec


@dataclass(frozen=True)
class SyntheticData:
    """What a generator returns.

    Attributes:
        cases: every image with its labels, mask and keypoints.
        training: cases listed as training images (imagesTr); validation cases belong here too, as in Learn2Reg.
        test: cases of the test pairs (imagesTs; unlike real Learn2Reg data, their labels ship too).
        registration_val, registration_test: the evaluation pairs.
        groundtruth: the true displacement of every evaluation pair.
        pairings: "paired" (intra-subject) or "unpaired" (inter-subject), the official key.
        covariates: each subject's clinical factors, where the generator draws them (recorded in the dataset
            json under ``covariates``, keyed by the four-digit subject number).
    """

    cases: dict[CaseId, Case]
    training: list[CaseId]
    test: list[CaseId]
    registration_val: list[PairId]
    registration_test: list[PairId]
    groundtruth: dict[PairId, Displacement]
    pairings: str
    covariates: dict[int, dict[str, float]] | None = None


def generate(spec: TaskSpec, *, scale: str = "default", seed: int | None = None,
             inputs: Mapping[str, Any] | None = None) -> SyntheticData:
    """Run the task's generator with a generator seeded from ``seed`` (the spec's seed by default); ``inputs``
    are files other jobs made that the generator takes by keyword (``cardiac_cohort``: its ``model``)."""
    if not spec.synthetic or spec.generator is None:
        raise RegbenchError(f"task {spec.name!r} is not synthetic (source: {spec.source})")
    module = importlib.import_module(f"regbench.tasks.{spec.generator}")
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    return module.generate(spec, spec.scale(scale), rng, **(inputs or {}))


def make_task(name_or_path: str | Path, outdir: str | Path, *, scale: str = "default",
              seed: int | None = None, inputs: Mapping[str, Any] | None = None) -> Path:
    """Generate a task and write it to ``outdir``, replacing a previous copy only once the new one is complete.

    An existing ``outdir`` must be empty or a dataset regbench generated for the same task; anything else is
    refused before any work, so no file of the user's is ever deleted.
    """
    spec = load_spec(name_or_path)
    outdir = Path(outdir)
    _check_replaceable(outdir, spec.name)
    return write_staged(spec, generate(spec, scale=scale, seed=seed, inputs=inputs), outdir)


def write_staged(spec: TaskSpec, data: SyntheticData, outdir: Path) -> Path:
    """Write ``data`` into a staging folder beside ``outdir``, renamed onto it only once complete."""
    with io.atomic_dir(outdir) as staging:
        write_synthetic(spec, data, staging)
    return outdir


# What a generated dataset holds at its top level besides its json: ``image_relpath``'s folders and companions.
_GENERATED = {f"{kind}{split}" for kind in ("images", "labels", "masks", "keypoints") for split in ("Tr", "Ts")}
_REFUSED = "make-task would delete it; give an empty or new folder"


def _check_replaceable(outdir: Path, name: str) -> None:
    """Raise unless ``outdir`` is absent, an empty folder, or a dataset regbench generated for task ``name``
    (its json says so and it holds nothing a generated dataset does not have)."""
    if not os.path.lexists(outdir):
        return
    if outdir.is_symlink() or not outdir.is_dir():
        raise DatasetError(outdir, f"exists and is not a folder; {_REFUSED}")
    json_name = f"{name}_dataset.json"
    entries = {entry.name for entry in outdir.iterdir()}
    others = sorted(entries - _GENERATED - {GROUNDTRUTH_DIR, json_name})
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise DatasetError(outdir, f"holds {listed}, so it is not a regbench-generated {name} dataset; {_REFUSED}")
    if entries and not _generated_json(outdir / json_name, name):
        raise DatasetError(outdir, f"is not a regbench-generated {name} dataset (no {json_name} written by "
                                   f"regbench); {_REFUSED}")


def _generated_json(path: Path, name: str) -> bool:
    """Whether ``path`` is the json of a dataset regbench generated for task ``name``."""
    try:
        description = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(description, dict) and description.get("release") == SYNTHETIC_RELEASE \
        and description.get("name") == name


def write_synthetic(spec: TaskSpec, data: SyntheticData, root: Path) -> None:
    test_cases = set(data.test)
    relpaths = {case: image_relpath(spec.name, case, test=case in test_cases) for case in data.cases}

    def entry(case: CaseId) -> dict[str, str]:
        item = {"image": relpaths[case]}
        companions = data.cases[case]
        if companions.labels is not None:
            item["label"] = relpaths[case].replace("images", "labels", 1)
        if companions.mask is not None:
            item["mask"] = relpaths[case].replace("images", "masks", 1)
        if companions.keypoints is not None:
            item["keypoints"] = relpaths[case].replace("images", "keypoints", 1).replace(".nii.gz", ".csv")
        return item

    def pairs(ids: list[PairId]) -> list[dict[str, str]]:
        return [{"fixed": relpaths[p.fixed], "moving": relpaths[p.moving]} for p in ids]

    shape = next(iter(data.cases.values())).image.shape
    description = describe(
        spec.name, ndim=spec.ndim, shape=shape, modality=spec.modalities, labels=spec.labels,
        training=[entry(c) for c in data.training], test=[entry(c) for c in data.test],
        registration_val=pairs(data.registration_val), registration_test=pairs(data.registration_test),
        pairings=data.pairings, description=spec.description,
        extra=None if data.covariates is None else
        {"covariates": {f"{subject:04d}": values for subject, values in sorted(data.covariates.items())}},
    )
    write_dataset(root, description, {relpaths[c]: case for c, case in data.cases.items()}, data.groundtruth)
