"""What one job of the workflow is expected to cost: the time and memory a scheduler is asked for
(``workflow/rules/common.smk``) and the cost table of a paper-scale run (``benchmarks/paper_costs.py``), from
the figures each method declares (``regbench.capabilities.Resources``).

The default-scale figures (``pair_seconds``, ``train_minutes``, ``mem_mb``) were measured on the CPU-sized
synthetic tasks and scale with a task's voxel count. That cannot size a paper-scale job: the paper presets train
for tens to hundreds of thousands of steps with larger networks at full resolution (voxelmorph: 150,000 steps
against 200). A method that declares ``Resources.paper`` (measured at OASIS size with its paper preset) is sized
from it at ``scale=paper``, by the task's voxels relative to OASIS's; memory too, which otherwise stays at the
default-scale figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from regbench.capabilities import Resources

REFERENCE_VOXELS = 160 * 224 * 192  # the OASIS-size pair the paper figures were measured on
DEFAULT_SCALE_VOXELS = {2: 128**2, 3: 64**3}  # the grids the default-scale figures refer to (per dimensionality)


@dataclass(frozen=True)
class TaskSize:
    """A task at the run's scale, as the cost of its jobs depends on it.

    Attributes:
        scale: the run's scale (``smoke``, ``default``, ``paper``).
        voxels: voxels of one image of the task at that scale.
        default_ratio: voxels relative to the default scale, which the default-scale figures refer to.
        pairs: the evaluation pairs the register job handles.
    """

    scale: str
    voxels: int
    default_ratio: float
    pairs: int

    def paper_figures(self, resources: Resources) -> bool:
        return self.scale == "paper" and resources.paper is not None

    @property
    def reference_ratio(self) -> float:
        return self.voxels / REFERENCE_VOXELS


def task_size(spec: Any, scale: str, split: str) -> TaskSize:
    """A task (``regbench.tasks.spec.TaskSpec``: a built-in synthetic task or a real Learn2Reg folder) at
    ``scale``, registering its ``split`` pairs. A real task has its own size at every scale; a synthetic task
    without that scale counts as default-sized, with 50 pairs."""
    if not spec.synthetic:
        voxels = math.prod(spec.shape)
        return TaskSize(scale, voxels, voxels / DEFAULT_SCALE_VOXELS[spec.ndim], spec.pair_counts[split])
    if scale not in spec.scales or "default" not in spec.scales:
        return TaskSize(scale, DEFAULT_SCALE_VOXELS[spec.ndim], 1.0, 50)
    sized = spec.scale(scale)
    voxels = math.prod(sized.shape)
    pairs = sized.test_pairs if split == "test" else sized.val_pairs
    return TaskSize(scale, voxels, voxels / math.prod(spec.scale("default").shape), pairs)


def train_seconds(resources: Resources, size: TaskSize) -> float:
    """Expected wall seconds of training on ``resources.threads`` CPU threads."""
    if size.paper_figures(resources):
        return 3600 * resources.paper.train_cpu_h / resources.threads * size.reference_ratio
    return 60 * resources.train_minutes * size.default_ratio


def pair_seconds(resources: Resources, size: TaskSize) -> float:
    """Expected wall seconds of one registration on ``resources.threads`` CPU threads."""
    if size.paper_figures(resources):
        return resources.paper.pair_cpu_s / resources.threads * size.reference_ratio
    return resources.pair_seconds * size.default_ratio


def peak_mb(resources: Resources, size: TaskSize) -> int:
    """Expected peak memory of a train or register job in MB: at paper scale the measured peak scaled by the
    voxel count (never below the default-scale figure), else the default-scale figure."""
    if size.paper_figures(resources):
        return max(resources.mem_mb, math.ceil(resources.paper.peak_mb * size.reference_ratio))
    return resources.mem_mb


def register_seconds(resources: Resources, size: TaskSize) -> float:
    """Expected wall seconds of a register job: every evaluation pair of the task."""
    return pair_seconds(resources, size) * size.pairs


def robustness_seconds(resources: Resources, size: TaskSize, track: dict) -> float:
    """Expected wall seconds of a robustness job (config ``robustness``): per pair the clean registration and,
    per budget, the random draws and up to two searches of ``evaluations`` registrations each."""
    per_pair = 1 + len(track["budgets"]) * (track["draws"] + 2 * track["evaluations"])
    return pair_seconds(resources, size) * per_pair * min(track["pairs"], size.pairs)


def time_limit_minutes(seconds: float) -> int:
    """A scheduler time limit for a job expected to take ``seconds``: three times that, at least 10 minutes."""
    return max(10, math.ceil(3 * seconds / 60))
