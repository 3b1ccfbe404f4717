"""Pairs: whether they are multi-modal, by modality name where known."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId, Pair, PairId


def _pair(fixed: tuple[int, str | None], moving: tuple[int, str | None]) -> Pair:
    image = Image(np.zeros((4, 4), dtype=np.float32))
    f = Case(CaseId(1, fixed[0]), image, modality=fixed[1])
    m = Case(CaseId(1, moving[0]), image, modality=moving[1])
    return Pair(PairId(f.id, m.id), f, m)


@pytest.mark.parametrize(("fixed", "moving", "expected"), [
    ((0, "MR"), (1, "CT"), True),       # AbdomenMRCT
    ((0, "CT"), (1, "CT"), False),      # inspiration/expiration CT: indices differ, modality does not
    ((0, "FBCT"), (1, "CBCT"), True),   # ThoraxCBCT
    ((0, "MR"), (0, "MR"), False),      # OASIS
    ((0, None), (1, None), True),       # names unknown: the indices decide
    ((0, "CT"), (0, None), False),
])
def test_multimodal_is_decided_by_modality_names_then_indices(fixed, moving, expected):
    assert _pair(fixed, moving).multimodal is expected


def test_a_blind_pair_keeps_images_and_masks_and_drops_labels_and_keypoints():
    image = Image(np.zeros((4, 5), np.float32))
    labels = LabelMap(np.ones((4, 5), np.uint8))
    case = Case(CaseId(1, 0), image, labels, labels, np.zeros((2, 2)), "MR")
    blind = Pair(PairId(case.id, case.id), case, case).blind()
    assert blind.fixed.image is image and blind.moving.mask is labels and blind.fixed.modality == "MR"
    assert (blind.fixed.labels, blind.fixed.keypoints, blind.moving.labels, blind.moving.keypoints) == (None,) * 4
