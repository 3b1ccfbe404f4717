"""Subject numbering and evaluation pairs of synthetic tasks."""

from __future__ import annotations

import pytest

from regbench.errors import RegbenchError
from regbench.pair import CaseId, PairId
from regbench.tasks.cohort import Cohort
from regbench.tasks.spec import Scale


def test_paired_cohort_pairs_each_subjects_two_images():
    cohort = Cohort.of(Scale((8, 8, 8), train=2, val_pairs=1, test_pairs=2), pairing="paired", modalities=(0, 1),
                       task="t")
    assert (cohort.training, cohort.val, cohort.test) == ((1, 2), (3,), (4, 5))
    assert cohort.pairs("val") == [PairId(CaseId(3, 0), CaseId(3, 1))]
    assert cohort.pairs("test") == [PairId(CaseId(4, 0), CaseId(4, 1)), PairId(CaseId(5, 0), CaseId(5, 1))]
    # validation subjects are listed under training (imagesTr), as in Learn2Reg
    assert cohort.training_cases == [CaseId(s, m) for s in (1, 2, 3) for m in (0, 1)]
    assert cohort.test_cases == [CaseId(s, m) for s in (4, 5) for m in (0, 1)]


def test_unpaired_cohort_chains_its_evaluation_subjects():
    cohort = Cohort.of(Scale((8, 8, 8), train=1, val_pairs=2, test_pairs=1), pairing="unpaired", modalities=(0,),
                       task="t")
    # n pairs need n + 1 subjects
    assert (cohort.training, cohort.val, cohort.test) == ((1,), (2, 3, 4), (5, 6))
    assert cohort.pairs("val") == [PairId(CaseId(2, 0), CaseId(3, 0)), PairId(CaseId(3, 0), CaseId(4, 0))]
    assert cohort.pairs("test") == [PairId(CaseId(5, 0), CaseId(6, 0))]
    assert cohort.subjects == (1, 2, 3, 4, 5, 6)


def test_a_split_without_pairs_has_no_subjects():
    cohort = Cohort.of(Scale((8, 8, 8), train=3, val_pairs=0, test_pairs=1), pairing="unpaired", modalities=(0,),
                       task="t")
    assert cohort.val == () and cohort.pairs("val") == []


@pytest.mark.parametrize(("pairing", "modalities", "message"), [
    ("paired", (0,), "paired tasks need 2 modalities, got 1"),
    ("unpaired", (0, 1), "unpaired tasks need 1 modalities, got 2"),
    ("hybrid", (0,), "pairing must be 'paired' or 'unpaired', got 'hybrid'"),
])
def test_cohort_rejects_a_pairing_its_modalities_cannot_serve(pairing, modalities, message):
    with pytest.raises(RegbenchError, match=f"task 't': {message}"):
        Cohort.of(Scale((8, 8, 8), 1, 1, 1), pairing=pairing, modalities=modalities, task="t")
