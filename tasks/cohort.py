"""Which synthetic subjects train, validate and test, and which images form the evaluation pairs.

Laid out as Learn2Reg lays out its data: subjects are numbered from 1, training subjects first, then the
validation subjects (listed under ``training`` too, as in the official datasets), then the test subjects
(``imagesTs``). A *paired* task (one subject's two images: inspiration/expiration, MR/CT) pairs each evaluation
subject's modality 0 (fixed) with its modality 1 (moving). An *unpaired* task (inter-subject) chains its
evaluation subjects: s -> s + 1, so n pairs need n + 1 subjects and each inner subject is fixed once and
moving once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from regbench.errors import RegbenchError
from regbench.pair import CaseId, PairId
from regbench.tasks.spec import Scale

Pairing = Literal["paired", "unpaired"]


@dataclass(frozen=True)
class Cohort:
    """Subject numbers of a synthetic task.

    Attributes:
        pairing: "paired" or "unpaired", the official ``pairings`` key.
        modalities: modality indices each subject is imaged with (two for paired tasks, one for unpaired).
        training: subjects used for training only.
        val, test: subjects of the validation and test pairs.
    """

    pairing: Pairing
    modalities: tuple[int, ...]
    training: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    @classmethod
    def of(cls, scale: Scale, *, pairing: str, modalities: tuple[int, ...], task: str) -> Cohort:
        """The cohort a scale asks for; ``task`` names the task in error messages."""
        if pairing not in ("paired", "unpaired"):
            raise RegbenchError(f"task {task!r}: pairing must be 'paired' or 'unpaired', got {pairing!r}")
        wanted = 2 if pairing == "paired" else 1
        if len(modalities) != wanted:
            raise RegbenchError(f"task {task!r}: {pairing} tasks need {wanted} modalities, got {len(modalities)}")
        extra = 0 if pairing == "paired" else 1  # a chain of n pairs needs n + 1 subjects
        counts = [scale.train] + [n + extra if n else 0 for n in (scale.val_pairs, scale.test_pairs)]
        starts = [1 + sum(counts[:i]) for i in range(3)]
        training, val, test = (tuple(range(s, s + n)) for s, n in zip(starts, counts))
        return cls(cast(Pairing, pairing), tuple(modalities), training, val, test)

    @property
    def subjects(self) -> tuple[int, ...]:
        return self.training + self.val + self.test

    def cases(self, subject: int) -> list[CaseId]:
        """The images of one subject, one per modality."""
        return [CaseId(subject, m) for m in self.modalities]

    @property
    def training_cases(self) -> list[CaseId]:
        """Everything listed under ``training`` (imagesTr): training and validation subjects."""
        return [c for s in self.training + self.val for c in self.cases(s)]

    @property
    def test_cases(self) -> list[CaseId]:
        return [c for s in self.test for c in self.cases(s)]

    def pairs(self, split: Literal["val", "test"]) -> list[PairId]:
        """The evaluation pairs of a split, fixed first."""
        subjects = self.val if split == "val" else self.test
        if self.pairing == "paired":
            fixed, moving = self.modalities
            return [PairId(CaseId(s, fixed), CaseId(s, moving)) for s in subjects]
        (modality,) = self.modalities
        return [PairId(CaseId(a, modality), CaseId(b, modality)) for a, b in zip(subjects, subjects[1:])]
