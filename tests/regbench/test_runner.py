"""Training-pair selection and registering a split: a failing pair is recorded and the others go on."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from regbench import io
from regbench.displacement import Displacement
from regbench.method import Capabilities, Method
from regbench.methods.components.instance import InstanceOptimised, InstanceParams
from regbench.pair import CaseId, Pair, PairId
from regbench.registry import get_method
from regbench.runner import RUNTIME_FILE, register_split, sample_ordered_pairs, train, training_pairs


class CrashesOnFirstPair(Method):
    """Zero field, except that it raises on the first pair it sees (as a buggy method would)."""

    name = "crashes_on_first_pair"
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def estimate(self, pair: Pair) -> Displacement:
        self.seen += 1
        assert pair.fixed.labels is None and pair.moving.keypoints is None, "evaluation data leaked"
        if self.seen == 1:
            raise RuntimeError("simulated crash\nwith a second line")
        return Displacement.zeros(pair.fixed.image.shape)


def test_a_crash_on_one_pair_is_recorded_and_the_others_are_registered(generated_task, tmp_path):
    from regbench.metrics.evaluate import evaluate_folder

    task = generated_task("cardiac_mr", "smoke")
    pairs = task.pair_ids("test")
    assert len(pairs) >= 2
    table = register_split(CrashesOnFirstPair(), task, tmp_path)
    assert list(pd.read_csv(tmp_path / RUNTIME_FILE)["status"]) == list(table["status"])
    assert list(table["status"]) == ["failed"] + ["ok"] * (len(pairs) - 1)
    assert table["message"][0] == "RuntimeError: simulated crash with a second line"
    assert not (tmp_path / f"{pairs[0].disp_stem}.nii.gz").exists()
    assert all((tmp_path / f"{p.disp_stem}.nii.gz").is_file() for p in pairs[1:])
    evaluation = evaluate_folder(task, tmp_path, split="test")
    assert list(evaluation.failures) == [pairs[0].key]
    scored = [s for s in evaluation.scores if s.error is None]
    assert len(scored) == len(pairs) - 1 and all(np.isfinite(s.mean("DSC")) for s in scored)


def test_every_pair_leaves_a_progress_line_in_the_log(generated_task, tmp_path, caplog):
    task = generated_task("cardiac_mr", "smoke")
    pairs = task.pair_ids("test")
    with caplog.at_level(logging.INFO, logger="regbench.runner"):
        register_split(CrashesOnFirstPair(), task, tmp_path)
    steps = [r for r in caplog.records if ": step " in r.getMessage()]
    assert [r.getMessage().split("step ", 1)[1].split(" ", 1)[0] for r in steps] == \
        [f"{i}/{len(pairs)}" for i in range(1, len(pairs) + 1)]
    assert steps[0].levelno == logging.ERROR and f"{pairs[0].key} FAILED: RuntimeError" in steps[0].getMessage()
    assert f"{pairs[1].key} runtime_s=" in steps[1].getMessage() and "ETA" in steps[1].getMessage()
    assert caplog.records[-1].getMessage() == f"registered {len(pairs) - 1} pairs, 1 failed"


def test_one_job_writes_a_method_and_its_refined_row_registering_each_pair_once(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    pairs = task.pair_ids("test")
    inner = CrashesOnFirstPair()
    refiner = InstanceOptimised(inner, InstanceParams.smoke())
    table = register_split(inner, task, tmp_path / "plain", refined=(refiner, tmp_path / "plain+io"))
    assert inner.seen == len(pairs)  # not twice: the refinement starts from the field the plain row wrote
    refined = pd.read_csv(tmp_path / "plain+io" / RUNTIME_FILE)
    assert list(refined["status"]) == list(table["status"]) == ["failed"] + ["ok"] * (len(pairs) - 1)
    assert (refined["runtime_s"][1:] > table["runtime_s"][1:]).all()  # the method's time plus the refinement's
    # the refinement moves the zero field towards the pair: its field differs from the plain row's
    stem = pairs[1].disp_stem
    plain, better = (io.read_disp(tmp_path / d / f"{stem}.nii.gz").data for d in ("plain", "plain+io"))
    assert not plain.any() and np.abs(better).max() > 0.1


def test_paired_task_trains_on_each_training_subject_in_evaluation_order(generated_task):
    task = generated_task("cardiac_mr", "smoke")
    pairs = training_pairs(task)
    held_out = {c for split in ("val", "test") for p in task.pair_ids(split) for c in (p.fixed, p.moving)}
    assert pairs and all(p.fixed.case == p.moving.case for p in pairs)
    assert all((p.fixed.modality, p.moving.modality) == (0, 1) for p in pairs)
    assert not held_out & {c for p in pairs for c in (p.fixed, p.moving)}


def test_unpaired_task_trains_on_ordered_pairs_of_distinct_training_subjects(generated_task):
    task = generated_task("brain_mr", "smoke")
    cases = task.training_cases()
    pairs = training_pairs(task)
    assert len(pairs) == len(cases) * (len(cases) - 1)
    assert all(p.fixed != p.moving and p.fixed in cases and p.moving in cases for p in pairs)


def test_training_a_classic_method_is_refused(generated_task, tmp_path):
    from regbench.errors import RegbenchError
    from regbench.registry import get_method
    from regbench.runner import train

    with pytest.raises(RegbenchError, match="not trainable"):
        train(get_method("identity"), generated_task("cardiac_mr", "smoke"), tmp_path / "m.pt", tmp_path)


def test_training_saves_the_model_and_copies_the_validation_curve(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    method = get_method("vrnet", scale="smoke", threads=1)  # validates at steps 15 and 30 of 30
    train(method, task, tmp_path / "vrnet.pt", tmp_path / "work", tmp_path / "vrnet_validation.csv")
    curve = pd.read_csv(tmp_path / "vrnet_validation.csv")
    assert curve["step"].tolist() == [15, 30] and curve["best"].sum() == 1 and curve["dice"].between(0, 1).all()
    assert (tmp_path / "vrnet.pt").is_file()
    plain = get_method("vrnet", scale="smoke", threads=1, validate_every=0)
    train(plain, task, tmp_path / "plain.pt", tmp_path / "plain", tmp_path / "plain_validation.csv")
    assert pd.read_csv(tmp_path / "plain_validation.csv").empty  # a header, no rows


def test_many_training_cases_give_a_bounded_deterministic_sample_of_ordered_pairs():
    # LUMIR ships 3384 training images: all ordered pairs would be 11 million
    cases = [CaseId(i, 0) for i in range(3384)]
    pairs = sample_ordered_pairs(cases, limit=5000)
    assert len(pairs) == len(set(pairs)) == 5000
    assert all(p.fixed != p.moving for p in pairs)
    assert len({c for p in pairs for c in (p.fixed, p.moving)}) > 2000  # spread over the cohort, not a corner
    assert pairs == sample_ordered_pairs(cases, limit=5000)
    few = cases[:4]
    assert sorted(sample_ordered_pairs(few, limit=5000)) == sorted(PairId(f, m) for f in few for m in few if f != m)
