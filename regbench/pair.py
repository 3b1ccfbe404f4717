"""Cases and registration pairs, named as Learn2Reg names them."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from regbench.image import Image, LabelMap

_STEM = re.compile(r"^(?P<task>.+)_(?P<case>\d{4})_(?P<mod>\d{4})$")


@dataclass(frozen=True, order=True)
class CaseId:
    """A subject and its modality or time-point index: ``{TASK}_{case:04d}_{modality:04d}``."""

    case: int
    modality: int

    def __str__(self) -> str:
        return f"{self.case:04d}_{self.modality:04d}"

    @classmethod
    def from_path(cls, path: str) -> CaseId:
        """Parse ``.../TASK_CCCC_MMMM.nii.gz`` (the official code slices the same characters)."""
        name = path.rsplit("/", 1)[-1]
        for ext in (".nii.gz", ".nii", ".csv"):
            if name.endswith(ext):
                name = name[: -len(ext)]
                break
        match = _STEM.match(name)
        if match is None:
            raise ValueError(f"{path}: not a Learn2Reg file name (expected TASK_CCCC_MMMM.nii.gz)")
        return cls(int(match["case"]), int(match["mod"]))


@dataclass(frozen=True, order=True)
class PairId:
    """A registration pair: the fixed case and the moving case."""

    fixed: CaseId
    moving: CaseId

    @property
    def key(self) -> str:
        """The case key of the official evaluation json: ``FFFF_MMMM<--FFFF_MMMM`` (fixed first)."""
        return f"{self.fixed}<--{self.moving}"

    @property
    def disp_stem(self) -> str:
        """The long submission name ``disp_FFFF_MMMM_FFFF_MMMM``, always accepted."""
        return f"disp_{self.fixed}_{self.moving}"

    @property
    def short_disp_stem(self) -> str | None:
        """``disp_FFFF_FFFF``, accepted by the official code only for modality 0000 (fixed) to 0001 (moving)."""
        if (self.fixed.modality, self.moving.modality) != (0, 1):
            return None
        return f"disp_{self.fixed.case:04d}_{self.moving.case:04d}"


@dataclass(frozen=True, eq=False)
class Case:
    """One image of a task with whatever the task provides beside it.

    Keypoints are (N, ndim) voxel coordinates in array order (the official CSV content). ``modality`` is the
    name the dataset json gives the case's modality index (``"CT"``, ``"MR"``, ``"CBCT"``), None where unknown.
    """

    id: CaseId
    image: Image
    labels: LabelMap | None = None
    mask: LabelMap | None = None
    keypoints: np.ndarray | None = None
    modality: str | None = None


@dataclass(frozen=True, eq=False)
class Pair:
    """What a method sees: the fixed and the moving case (labels only where the task allows their use)."""

    id: PairId
    fixed: Case
    moving: Case

    @property
    def ndim(self) -> int:
        return self.fixed.image.ndim

    def blind(self) -> Pair:
        """What a method may see at registration time: images and masks, no labels, no keypoints."""
        return Pair(self.id, *(dataclasses.replace(case, labels=None, keypoints=None)
                               for case in (self.fixed, self.moving)))

    @property
    def multimodal(self) -> bool:
        """Whether fixed and moving come from different modalities, so intensities do not correspond.

        Decided by the modality names; where either is unknown, by the modality indices. The names matter:
        inspiration/expiration CT pairs have indices 0000 and 0001 but are both "CT".
        """
        if self.fixed.modality is not None and self.moving.modality is not None:
            return self.fixed.modality != self.moving.modality
        return self.fixed.id.modality != self.moving.id.modality
