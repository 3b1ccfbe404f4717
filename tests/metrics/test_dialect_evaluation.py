"""``regbench evaluate`` on the Learn2Reg dialect fixtures (``tests/learn2reg_dialects.py``): what the public
download allows to score, and the same pairs scored on the organisers' ground-truth folder (``hidden_root``,
with the public json copied beside it), with the true field against a zero field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from regbench import io
from regbench.cli import main
from regbench.dataset import read_dataset
from regbench.displacement import Displacement
from regbench.metrics.eval_config import read_eval_config
from regbench.metrics.evaluate import evaluate_folder
from tests.learn2reg_dialects import (
    lumir_validation_pairs, read_true_field, write_classic, write_comulis_2d, write_comulis_disp, write_lumir,
    write_thoraxcbct,
)

BUILDERS = {"oasis": write_classic, "thoraxcbct": write_thoraxcbct, "lumir": write_lumir, "comulis": write_comulis_2d}


@pytest.fixture(scope="module")
def dialects(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (public root, ground-truth root with the public json copied in)."""
    base = tmp_path_factory.mktemp("dialects")
    built = {}
    for name, builder in BUILDERS.items():
        root = builder(base / name, hidden_root=base / f"{name}_gt", true_fields=True)
        shutil.copy(next(root.glob("*_dataset.json")), base / f"{name}_gt")
        built[name] = root, base / f"{name}_gt"
    return built


def write_fields(root: Path, folder: Path, split: str, *, true: bool) -> Path:
    """The true field (or a zero field) of every pair of the split, as the dialect's submissions store them."""
    task = read_dataset(root)
    for pair in task.pair_ids(split):
        u = read_true_field(root, pair) if true else np.zeros((*task.shape, task.ndim))
        if task.ndim == 2:
            write_comulis_disp(folder / f"{pair.disp_stem}.nii.gz", u)
        else:
            io.write_disp(folder / f"{pair.disp_stem}.nii.gz", Displacement(u.astype(np.float32)))
    return folder


def test_oasis_test_split_without_labels(dialects, tmp_path, capsys):
    public, truth = dialects["oasis"]
    fields = write_fields(public, tmp_path / "true", "test", true=True)
    assert main(["evaluate", str(public), str(fields), "--split", "test", "--out", str(tmp_path / "out")]) == 0
    reason = f"{public / 'labelsTs' / 'OASIS_0415_0000.nii.gz'}: file not found (and for all 2 pairs)"
    assert capsys.readouterr().err.splitlines() == [
        f"regbench: not scored {m}: {reason}" for m in ("DSC", "HD95", "HD95_mm")]
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert list(result["aggregates"])[:3] == ["LogJacDetStd", "FoldingFraction", "NDV"]
    # The organisers' folder has the labels: the true field aligns them, the zero field does not.
    zero = write_fields(public, tmp_path / "zero", "test", true=False)
    scored = {kind: evaluate_folder(read_dataset(truth), folder, split="test")
              for kind, folder in (("true", fields), ("zero", zero))}
    assert all(e.not_scored == {} and e.not_scored_cases == {} for e in scored.values())
    assert scored["true"].aggregates()["DSC"]["mean"] > 0.99 > 0.7 > scored["zero"].aggregates()["DSC"]["mean"]


def test_thoraxcbct_keypoints_of_each_cbct_time_point(dialects, tmp_path):
    public, truth = dialects["thoraxcbct"]
    fields, zero = (write_fields(public, tmp_path / k, "val", true=k == "true") for k in ("true", "zero"))
    evaluation = evaluate_folder(read_dataset(public), fields)  # validation keypoints are not published
    missing = public / "keypoints01Tr" / "ThoraxCBCT_0002_0001.csv"
    assert evaluation.not_scored == {"TRE_kp": f"{missing}: file not found (nor a .nii.gz landmark map) "
                                               "(and for all 4 pairs)"}
    true, zeros = (evaluate_folder(read_dataset(truth), f).to_json()["cases"] for f in (fields, zero))
    assert set(true) == {"0002_0001<--0002_0000", "0003_0001<--0003_0000", "0002_0002<--0002_0000",
                         "0003_0002<--0003_0000"}
    for key in true:  # from keypoints01Tr for CBCT 0001, keypoints02Tr for CBCT 0002
        assert true[key]["TRE_kp"]["mean"] < 0.05 < 0.5 < zeros[key]["TRE_kp"]["mean"]


def test_lumir_configs_on_the_public_and_the_organisers_folder(dialects, tmp_path):
    public, truth = dialects["lumir"]
    fields, zero = (write_fields(public, tmp_path / k, "val", true=k == "true") for k in ("true", "zero"))
    for name in ("disp_3455_0000_3454_0000.nii.gz", "disp_3485_0000_3484_0000.nii.gz"):
        (fields / name).rename(fields / name.replace("_0000", ""))  # LUMIR's short names are accepted too
    groups: dict[str, list] = {}
    for group, pair in lumir_validation_pairs():
        groups.setdefault(group, []).append(pair)
    image = "./imagesVal/LUMIRMRI_{}.nii.gz".format
    configs = {}
    for group, methods in (("in_domain", [{"name": "Non-diffeomorphic Volumes", "metric": "ndv"},
                                          {"name": "DSC", "metric": "dice", "labels": [0, 1, 2, 3, 4]}]),
                           ("landmark", [{"name": "Non-diffeomorphic Volumes", "metric": "ndv"},
                                         {"name": "TRE_lm", "metric": "tre", "dest": "landmarks"}])):
        path = tmp_path / f"LUMIR_VAL_{group}_evaluation_config.json"
        pairs = [{"fixed": image(f), "moving": image(m)} for f, m in groups[group]]
        path.write_text(json.dumps({"name": "LUMIR", "evaluation_methods": methods, "expected_shape": [20, 24, 20, 3],
                                    "eval_pairs": pairs, "eval_config_version": 0.0, "masked_evaluation": False}))
        configs[group] = read_eval_config(path)
    public_seg = evaluate_folder(read_dataset(public), fields, config=configs["in_domain"])
    assert list(public_seg.not_scored) == ["DSC"]
    assert public_seg.metric_names[:2] == ["Non-diffeomorphic Volumes", "NDV"]  # then the fixture's DispError
    public_lm = evaluate_folder(read_dataset(public), fields, config=configs["landmark"])
    assert list(public_lm.not_scored) == ["TRE_lm"] and "nor a .nii.gz" in public_lm.not_scored["TRE_lm"]
    for folder, perfect in ((fields, True), (zero, False)):
        seg = evaluate_folder(read_dataset(truth), folder, config=configs["in_domain"])
        lm = evaluate_folder(read_dataset(truth), folder, config=configs["landmark"])
        assert not seg.failures and not lm.failures and seg.not_scored == lm.not_scored == {}
        assert all(len(s.detailed["DSC"]) == 5 for s in seg.scores)  # the background 0 is scored
        tre = lm.aggregates()["TRE_lm"]["mean"]
        assert tre == 0.0 if perfect else tre > 0.5  # the fixture's landmarks move exactly with the true field
        assert seg.aggregates()["NDV"]["mean"] == 0.0  # smooth diffeomorphic fields


def test_comulis_fields_stored_h_w_1_2(dialects, tmp_path):
    public, truth = dialects["comulis"]
    fields = write_fields(public, tmp_path / "true", "val", true=True)
    evaluation = evaluate_folder(read_dataset(truth), fields)
    assert not evaluation.failures and evaluation.aggregates()["TRE_kp"]["mean"] < 0.05
