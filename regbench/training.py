"""What every network method's training shares: a learning-rate schedule, the validation pairs scored every
few steps, and the best of those checkpoints kept (``TrainingParams``, ``TrainingMonitor``).

A training loss that still falls says little about registration: the validation score (labels of the task's
``val`` pairs warped by the method's own ``estimate`` as registration would warp them, or their keypoints
moved by it) says whether the network got better at the job, and keeping the checkpoint where it was best guards
against training past it. The score is what the task is ranked by: Dice, or on a task whose validation pairs
have keypoints, the target registration error (thorax_ct: vrnet's checkpoint of best lung-mask Dice, 0.954
against 0.941, had the worse test TRE, 3.06 against 2.56 mm).
Validation pairs are the task's, never its test pairs, so selecting on them is model selection, not tuning on
the test. The curve goes to the log, to ``VALIDATION_LOG`` beside the model and into the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from regbench import io
from regbench.dataset import Task
from regbench.errors import RegbenchError
from regbench.method import Hyperparams, check_choice
from regbench.pair import Pair
from regbench.pretrained import VALIDATION_COLUMNS, VALIDATION_LOG
from regbench.spatial import warp_labels

if TYPE_CHECKING:
    from regbench.method import NetworkMethod

log = logging.getLogger(__name__)
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainingParams(Hyperparams):
    """Training settings the network methods share (a subclass with a ``__post_init__`` calls this one's).

    Attributes:
        lr_schedule: ``constant``, or ``cosine`` (the learning rate falls from ``lr`` to 0 along a half cosine
            over the training steps: large steps early, small ones to settle).
        validate_every: steps between validations (and one after the last step); 0 turns validation off and
            keeps the last state.
        validation_pairs: how many of the task's validation pairs (the first ones) are scored.
    """

    lr_schedule: str = "constant"
    validate_every: int = 50
    validation_pairs: int = 4

    def __post_init__(self) -> None:
        check_choice(self, "lr_schedule", SCHEDULES)
        if self.validate_every < 0 or self.validation_pairs < 1:
            raise RegbenchError(f"{type(self).__name__}: need validate_every >= 0 and validation_pairs >= 1, got "
                                f"{self.validate_every} and {self.validation_pairs}")


class TrainingMonitor:
    """Drives one training run's schedule and validation: ``step()`` after every optimiser step, ``finish()``
    at the end (restores the best validated state and writes the curve).

    Args:
        method: the network method being trained (its ``net`` is what is validated and restored).
        task: the task whose validation pairs score it.
        optimisers: the optimisers whose learning rate the schedule sets.
        steps: how many steps this run takes (the schedule's length; validation also follows the last).
        validate: False runs only the schedule (a stage whose network is not yet the one that registers).
    """

    def __init__(self, method: NetworkMethod, task: Task, optimisers: Sequence[torch.optim.Optimizer], steps: int,
                 *, validate: bool = True) -> None:
        params: TrainingParams = method.params  # type: ignore[assignment]
        self.method, self.steps, self.every, self.done = method, steps, params.validate_every, 0
        self.schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=steps)
                           for o in optimisers] if params.lr_schedule == "cosine" else []
        self.pairs = validation_pairs(task, params.validation_pairs) if validate and self.every else []
        self.classes = sorted(set(task.labels) - {0})
        self.by_tre = bool(self.pairs) and all(_has_keypoints(p) for p in self.pairs)
        self.curve: list[tuple[int, float, float]] = []
        self.best: tuple[int, float, dict[str, torch.Tensor]] | None = None
        if validate and self.every and not self.pairs:
            log.info("%s: no validation (task %s has no validation pairs with labels or keypoints); the last "
                     "state is kept", method.name, task.name)

    def step(self) -> None:
        """After an optimiser step: advance the schedule; validate when one is due."""
        self.done += 1
        for scheduler in self.schedulers:
            scheduler.step()
        if self.pairs and (self.done % self.every == 0 or self.done == self.steps):
            self.validate()

    def validate(self) -> float:
        """Mean Dice and (with keypoints) TRE over the validation pairs now; keeps a copy of the state if its score
        (Dice, or minus the TRE) is the best so far. Runs with the random state of torch and of ``method.rng``
        restored afterwards, so validating does not change what training draws next."""
        method = self.method
        rng_state = method.rng.bit_generator.state
        devices = [method.device.index or 0] if method.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # no no_grad: estimate may fine-tune (voxelmorph, csain)
            fields = [method.estimate(pair.blind()).to_torch(device=method.device) for pair in self.pairs]
        method.rng.bit_generator.state = rng_state
        dice = float(np.mean([pair_dice(pair, disp, self.classes) for pair, disp in zip(self.pairs, fields)]))
        tre = (float(np.mean([pair_tre(pair, disp) for pair, disp in zip(self.pairs, fields)])) if self.by_tre
               else float("nan"))
        score = -tre if self.by_tre else dice
        self.curve.append((self.done, dice, tre))
        if self.best is None or score > self.best[1]:
            self.best = (self.done, score, {k: v.detach().clone() for k, v in method.net.state_dict().items()})
        log.info("validate %s: step %d/%d mean Dice %.4f, TRE %.3f mm over %d pairs (best step %d)", method.name,
                 self.done, self.steps, dice, tre, len(self.pairs), self.best[0])
        return score

    def finish(self, workdir: Path) -> None:
        """Restore the best validated state (if validation ran) and write the curve to ``VALIDATION_LOG``."""
        if self.best is not None:
            self.method.net.load_state_dict(self.best[2])
        best_step = self.best[0] if self.best else None
        table = pd.DataFrame([(step, dice, tre, step == best_step) for step, dice, tre in self.curve],
                             columns=VALIDATION_COLUMNS)
        with io.atomic_path(Path(workdir) / VALIDATION_LOG) as tmp:
            table.to_csv(tmp, index=False)



def validation_pairs(task: Task, count: int) -> list[Pair]:
    """The task's first ``count`` validation pairs with label maps or keypoints on both sides."""
    pairs = [task.load_pair(pair_id, with_labels=True) for pair_id in task.pair_ids("val")[:count]]
    labelled = bool(set(task.labels) - {0})
    return [p for p in pairs if _has_keypoints(p) or
            (labelled and p.fixed.labels is not None and p.moving.labels is not None)]


def _has_keypoints(pair: Pair) -> bool:
    return pair.fixed.keypoints is not None and pair.moving.keypoints is not None


def pair_dice(pair: Pair, disp: torch.Tensor, classes: Sequence[int]) -> float:
    """Mean Dice over ``classes`` present in the fixed or the warped moving labels, the moving labels warped by
    ``disp`` (1, ndim, *fixed grid) with nearest neighbour, as the evaluation warps them (NaN without labels)."""
    if pair.fixed.labels is None or pair.moving.labels is None:
        return float("nan")
    moving = torch.as_tensor(pair.moving.labels.data.astype(np.int64), device=disp.device)[None, None]
    warped = warp_labels(moving, disp)[0, 0].cpu().numpy()
    fixed = pair.fixed.labels.data
    scores = []
    for label in classes:
        a, b = fixed == label, warped == label
        total = a.sum() + b.sum()
        if total:
            scores.append(2.0 * (a & b).sum() / total)
    return float(np.mean(scores)) if scores else float("nan")


def pair_tre(pair: Pair, disp: torch.Tensor) -> float:
    """Mean distance (mm, the moving image's voxel size) from the fixed keypoints moved by ``disp`` (1, ndim,
    *fixed grid) to the moving keypoints. The field is sampled linearly: a validation score, not the evaluation's
    TRE (``metrics.tre``, cubic splines), which it follows within a small fraction of a voxel."""
    field = disp[0].detach().cpu().numpy().astype(np.float64)
    points = np.asarray(pair.fixed.keypoints, dtype=np.float64)
    moved = points + np.stack([ndimage.map_coordinates(component, points.T, order=1) for component in field], axis=1)
    spacing = np.asarray(pair.moving.image.spacing, dtype=np.float64)
    return float(np.linalg.norm((moved - pair.moving.keypoints) * spacing, axis=1).mean())
