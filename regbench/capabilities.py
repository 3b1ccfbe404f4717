"""What a method declares about itself: what it can do (``Capabilities``) and what its jobs need (``Resources``).

Kept apart from ``regbench.method`` (which needs torch) so that ``regbench methods`` and the workflow's planning
can read a method's declarations without importing it (``regbench.registry.method_summary``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What a method can do, shown by ``regbench methods`` and checked before it runs.

    Attributes:
        dims: spatial dimensionalities it registers (2, 3 or both).
        multimodal: whether it is meant for pairs whose intensities do not correspond (MR-CT). The workflow
            does not run other methods on multi-modal tasks (their assumption that intensities correspond makes
            their fields meaningless there: vrnet's brightness constancy moved MR-CT labels from Dice 0.57 to
            0.02); called directly on such a pair they run, with a warning.
        needs_labels: whether training uses label maps (only allowed where the task permits it).
        uncertainty: whether ``register`` returns a per-voxel std or posterior samples with the field.
        max_voxels: the largest image (voxels of the fixed or of the moving image) it registers or trains on;
            a larger pair is refused before any work, with one line naming the limit and ``max_voxels_reason``.
            None (the default): no limit. Declared only where a measurement (``benchmarks/bench_real_sizes.py``)
            showed the method cannot do such a pair within sane time or memory on 2 CPU cores.
        max_voxels_reason: why the limit exists (what runs out, and how much it would need), for the message.
    """

    dims: frozenset[int] = frozenset({2, 3})
    multimodal: bool = False
    needs_labels: bool = False
    uncertainty: bool = False
    max_voxels: int | None = None
    max_voxels_reason: str = ""

    def suits(self, ndim: int, multimodal: bool) -> bool:
        """Whether the workflow runs the method on a task of ``ndim`` whose pairs are (or are not) multi-modal."""
        return ndim in self.dims and (self.multimodal or not multimodal)


@dataclass(frozen=True)
class Resources:
    """What one registration (or training) job of the method needs; becomes Snakemake threads and resources.

    Attributes:
        threads: CPU threads it uses well (``torch.set_num_threads``).
        mem_mb: peak memory in MB at default scale.
        gpu: whether it can use a GPU when one is given (it must still run on the CPU).
        pair_seconds: seconds one registration takes at default scale on ``threads`` CPU threads; with
            ``train_minutes`` it sizes the ``runtime`` a cluster scheduler is asked for (other scales scale it
            by their voxel count), so it should err high.
        train_minutes: minutes training takes at default scale (learning methods only).
        paper: what a job costs at ``scale=paper`` where the default-scale figures cannot say it (``PaperCost``);
            None: the default-scale figures, scaled by the voxel count (``regbench.job_costs``).
    """

    threads: int = 2
    mem_mb: int = 4000
    gpu: bool = False
    pair_seconds: float = 10.0
    train_minutes: float = 0.0
    paper: PaperCost | None = None


@dataclass(frozen=True)
class PaperCost:
    """A method's measured cost with its paper preset on an OASIS-size pair (160x224x192 voxels, 2 CPU threads:
    ``benchmarks/bench_real_sizes.py --preset paper``); ``regbench.job_costs`` scales it to each task's size.

    Attributes:
        pair_cpu_s: CPU seconds of one registration.
        train_cpu_h: CPU hours of the preset's whole training (per-step cost times its steps, plus the fixed
            cost of preparing the training pairs); 0 for a classic method.
        peak_mb: peak resident memory in MB of the larger of training and registration.
    """

    pair_cpu_s: float
    peak_mb: int
    train_cpu_h: float = 0.0
