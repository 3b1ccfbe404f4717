"""metrics/evaluate.py and ``regbench evaluate``: official numbers, result files, bad input, extensions."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from regbench import io
from regbench.cli import main
from regbench.displacement import Displacement
from regbench.metrics.eval_config import EvalConfig, config_for_task, write_eval_config
from regbench.metrics.evaluate import evaluate_folder, evaluate_pair, write_evaluation
from regbench.pair import CaseId, PairId

# What the official evaluation.py (MDL-UzL/L2R @ 8847509 under numpy 1.23.5, scipy 1.9.3, nibabel 4.0.2)
# writes for conftest.write_reference_submission with the config ``config_for_task`` derives (LogJacDetStd,
# DSC and HD95 over labels 1-5, TRE_kp; masked). Pair 1's label 1 is 10 voxels off: the distance-transform
# fallback of HD95. Pair 2's field folds and is a float32 .npz under the short name.
OFFICIAL_CASES = {
    "0001_0000<--0001_0001": {
        "LogJacDetStd": {"mean": 0.059836981105318814, "detailed": 0.059836981105318814},
        "DSC": {"mean": 0.1574506625697047,
                "detailed": [0.08588957055214724, 0.15761555948471836, 0.16575192096597147,
                             0.17118997912317327, 0.20680628272251309]},
        "HD95": {"mean": 7.4673566100258855,
                 "detailed": [10.0, 7.280109889280518, 7.3484692283495345, 6.0, 6.708203932499369]},
        "TRE_kp": {"mean": 1.4784073437309484,
                   "first": [0.7253188820312875, 1.99068574095953, 0.7619238691364648, 1.5974762727044705,
                             1.8937604876908611, 1.2368839982218935],
                   "max": 2.750637480626891},
    },
    "0002_0000<--0002_0001": {
        "LogJacDetStd": {"mean": 0.15134368274524382, "detailed": 0.15134368274524382},
        "DSC": {"mean": 0.17422599337442798,
                "detailed": [0.16626506024096385, 0.10827374872318693, 0.36518203659212717,
                             0.08257191201353638, 0.14883720930232558]},
        "HD95": {"mean": 9.060504921142819,
                 "detailed": [9.643650760992955, 11.661903789690601, 6.324555320336759, 7.280109889280518,
                              10.392304845413264]},
        "TRE_kp": {"mean": 2.4638668170889053,
                   "first": [3.330837760569734, 3.035507987041048, 2.5444085049359106, 1.736189709375321,
                             3.8092182972596786, 0.5929062850381637],
                   "max": 5.0876496509456},
    },
}


def test_matches_the_official_evaluation(reference_submission):
    # Dice, HD95 and TRE are bit-identical. SDlogJ agrees to rounding: for the .npz field the official code
    # computes in float32 and regbench in float64 (1.1e-9 relative here; 1e-7 bounds float32 rounding).
    task, disp_dir = reference_submission
    evaluation = evaluate_folder(task, disp_dir)
    assert not evaluation.failures
    cases = evaluation.to_json()["cases"]
    for key, expected in OFFICIAL_CASES.items():
        case = cases[key]
        np.testing.assert_allclose(case["LogJacDetStd"]["mean"], expected["LogJacDetStd"]["mean"], rtol=1e-7)
        for metric in ("DSC", "HD95"):
            assert case[metric]["mean"] == expected[metric]["mean"]
            assert case[metric]["detailed"] == expected[metric]["detailed"]
        tre = case["TRE_kp"]
        np.testing.assert_allclose(tre["mean"], expected["TRE_kp"]["mean"], rtol=1e-12)
        np.testing.assert_allclose(tre["detailed"][:6], expected["TRE_kp"]["first"], rtol=1e-12)
        np.testing.assert_allclose(max(tre["detailed"]), expected["TRE_kp"]["max"], rtol=1e-12)


def test_result_files_have_the_official_layout(reference_submission, tmp_path):
    task, disp_dir = reference_submission
    evaluation = evaluate_folder(task, disp_dir)
    write_evaluation(evaluation, tmp_path / "out")
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert list(result)[:4] == ["name", "aggregates", "cases", "eval_version"]
    assert result["name"] == "Toy" and result["eval_version"] == "2.0"
    assert result["failed"] == {} and result["unexpected_files"] == []
    assert result["not_scored"] == {} and result["not_scored_cases"] == {}
    means = {m: [c[m]["mean"] for c in result["cases"].values()] for m in ("DSC", "HD95", "TRE_kp")}
    # "30": the 0.3 quantile of case means for DSC and (as officially) HD95, the 0.7 quantile for TRE.
    assert result["aggregates"]["DSC"]["30"] == pytest.approx(np.quantile(means["DSC"], 0.3))
    assert result["aggregates"]["HD95"]["30"] == pytest.approx(np.quantile(means["HD95"], 0.3))
    assert result["aggregates"]["TRE_kp"]["30"] == pytest.approx(np.quantile(means["TRE_kp"], 0.7))
    assert result["aggregates"]["DSC"]["std"] == pytest.approx(np.std(means["DSC"]))
    rows = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert list(rows.columns) == ["pair", "label", "metric", "value"]
    first = rows[rows["pair"] == "0001_0000<--0001_0001"]
    assert first.groupby("metric", sort=False).size().to_dict() == {
        "LogJacDetStd": 1, "FoldingFraction": 1, "DSC": 5, "HD95": 5, "HD95_mm": 5, "TRE_kp": 40, "NDV": 1,
        "Failed": 1}
    assert first[first["metric"] == "DSC"]["label"].tolist() == [1, 2, 3, 4, 5]
    assert first[first["metric"] == "TRE_kp"]["label"].tolist() == list(range(40))
    assert first[first["metric"] == "LogJacDetStd"]["label"].isna().all()
    assert (rows[rows["metric"] == "Failed"]["value"] == 0).all()


def test_folding_fraction_and_hd95_mm(reference_submission):
    task, disp_dir = reference_submission
    cases = evaluate_folder(task, disp_dir).to_json()["cases"]
    # The second field folds (SDlogJ 0.16); the first does not.
    assert cases["0001_0000<--0001_0001"]["FoldingFraction"]["mean"] == 0.0
    assert 0.0 < cases["0002_0000<--0002_0001"]["FoldingFraction"]["mean"] < 0.5
    # HD95_mm recomputes with the fixed spacing (1.5, 1.2, 2.0): between 1.2 and 2.0 times the voxel value.
    for case in cases.values():
        ratio = np.array(case["HD95_mm"]["detailed"]) / np.array(case["HD95"]["detailed"])
        assert ((ratio >= 1.2 - 1e-12) & (ratio <= 2.0 + 1e-12)).all()


def write_field(path, shape, value=0.0):
    io.write_disp(path, Displacement(np.full((*shape, len(shape)), value, dtype=np.float32)))


def test_bad_fields_fail_only_their_pair(make_dataset, tmp_path):
    task = make_dataset(np.random.default_rng(5), n_pairs=6, n_keypoints=10)
    pairs = task.pair_ids("val")
    shape = task.shape
    disp_dir = tmp_path / "disp"
    write_field(disp_dir / f"{pairs[0].disp_stem}.nii.gz", shape, 0.5)
    write_field(disp_dir / f"{pairs[1].disp_stem}.nii.gz", (shape[0] - 1, *shape[1:]))  # wrong shape
    nan_field = np.zeros((*shape, 3), dtype=np.float32)
    nan_field[3, 4, 5, 1] = np.nan
    nib.save(nib.Nifti1Image(nan_field, np.eye(4)), disp_dir / f"{pairs[2].disp_stem}.nii.gz")  # NaN
    nib.save(nib.Nifti1Image(np.zeros((3, *shape), np.float32), np.eye(4)),  # channels first
             disp_dir / f"{pairs[3].disp_stem}.nii.gz")
    (disp_dir / f"{pairs[4].short_disp_stem}.npz").write_bytes(b"not a zip file")  # unreadable
    # pairs[5]: no file at all; and a field for a pair the dataset does not have:
    write_field(disp_dir / f"{PairId(CaseId(99, 0), CaseId(99, 1)).disp_stem}.nii.gz", shape)
    evaluation = evaluate_folder(task, disp_dir)
    failures = evaluation.failures
    assert sorted(failures) == sorted(p.key for p in pairs[1:])
    assert "expected shape (20, 24, 18, 3), got (19, 24, 18, 3)" in failures[pairs[1].key]
    assert "NaN or inf" in failures[pairs[2].key]
    assert "channels-last" in failures[pairs[3].key]
    assert "not a readable npz file" in failures[pairs[4].key]
    assert "missing disp_0006_0000_0006_0001.npz/.nii.gz or disp_0006_0006.npz/.nii.gz" in failures[pairs[5].key]
    assert all("\n" not in reason for reason in failures.values())
    assert evaluation.unexpected_files == ["disp_0099_0000_0099_0001.nii.gz"]
    cases = evaluation.to_json()["cases"]
    scored = cases[pairs[0].key]
    assert scored["LogJacDetStd"]["mean"] < 1e-14 and scored["TRE_kp"]["mean"] > 0
    failed = cases[pairs[1].key]  # the missing-case substitutes of metrics.substitutes (a label task)
    assert failed["DSC"]["detailed"] == [0.0] * 4 and failed["HD95"]["detailed"] == [10.0] * 4
    assert failed["LogJacDetStd"]["mean"] == 1.5 and failed["TRE_kp"]["detailed"] == [30.0] * 10
    assert np.isnan(failed["FoldingFraction"]["mean"]) and np.isnan(failed["HD95_mm"]["detailed"][0])
    rows = evaluation.rows()
    assert rows[rows["metric"] == "Failed"]["value"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_runtimes_join_the_tables_with_the_missing_value_for_failures(make_dataset, tmp_path):
    task = make_dataset(np.random.default_rng(6), n_pairs=3)
    pairs = task.pair_ids("val")
    for pair in pairs[:2]:
        write_field(tmp_path / "disp" / f"{pair.disp_stem}.nii.gz", task.shape)
    evaluation = evaluate_folder(task, tmp_path / "disp", runtimes={pairs[0]: 1.25})
    runtimes = [evaluation.to_json()["cases"][p.key]["Runtime_s"]["mean"] for p in pairs]
    assert runtimes == [1.25, 5000.0, 5000.0]  # pair 2 not timed, pair 3 failed (no field)


def test_ground_truth_field_has_zero_displacement_error(make_dataset, tmp_path):
    task = make_dataset(np.random.default_rng(7), groundtruth=True, masks=True)
    for pair in task.pair_ids("val"):
        io.write_disp(tmp_path / "disp" / f"{pair.disp_stem}.nii.gz", task.load_groundtruth(pair))
        write_field(tmp_path / "zero" / f"{pair.disp_stem}.nii.gz", task.shape)
    truth = evaluate_folder(task, tmp_path / "disp").aggregates()
    assert truth["DispError_mm"]["mean"] == 0.0 and truth["DispError95_mm"]["mean"] == 0.0
    assert evaluate_folder(task, tmp_path / "zero").aggregates()["DispError_mm"]["mean"] > 0.1


def test_in_memory_field_scores_as_its_file(reference_submission):
    # What a workflow can do with a method's float32 output: the same numbers as the NIfTI file it writes,
    # once TRE samples in float64 as the official code does for NIfTI (float32 splines differ by ~1e-7).
    task, disp_dir = reference_submission
    pair = task.pair_ids("val")[0]
    config = config_for_task(task, "val")
    field = Displacement(io.read_disp(disp_dir / f"{pair.disp_stem}.nii.gz").data.astype(np.float32))
    from_folder = evaluate_folder(task, disp_dir).scores[0]
    from_memory = evaluate_pair(task, pair, field, config, spline_dtype=np.float64)
    assert from_memory.detailed == from_folder.detailed
    float32_tre = evaluate_pair(task, pair, field, config).detailed["TRE_kp"]
    np.testing.assert_allclose(float32_tre, from_folder.detailed["TRE_kp"], rtol=1e-6)
    assert float32_tre != from_folder.detailed["TRE_kp"]


def test_2d_task(make_dataset, tmp_path):
    task = make_dataset(np.random.default_rng(8), shape=(30, 26), n_labels=3, n_keypoints=6)
    for pair in task.pair_ids("val"):
        write_field(tmp_path / "disp" / f"{pair.disp_stem}.nii.gz", task.shape, 1.0)
    evaluation = evaluate_folder(task, tmp_path / "disp")
    assert not evaluation.failures
    case = evaluation.to_json()["cases"][task.pair_ids("val")[0].key]
    assert case["LogJacDetStd"]["mean"] < 1e-14
    assert 0.0 <= case["DSC"]["mean"] <= 1.0 and case["HD95"]["mean"] >= 0.0


def test_cli_scores_a_folder_and_reports_failures_in_one_line(reference_submission, tmp_path, capsys):
    task, disp_dir = reference_submission
    (disp_dir / "disp_0002_0002.npz").unlink()  # one pair missing
    code = main(["evaluate", str(task.root), str(disp_dir), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.strip().splitlines() == [
        f"regbench: failed 0002_0000<--0002_0001: {disp_dir}: missing disp_0002_0000_0002_0001.npz/.nii.gz "
        "or disp_0002_0002.npz/.nii.gz"]
    assert "scored 1 of 2 pairs" in captured.out and "Traceback" not in captured.err
    for name in ("metrics.csv", "evaluation.json", "evaluation_config.json"):
        assert (tmp_path / "out" / name).is_file()


def test_cli_reads_an_official_config(reference_submission, tmp_path, capsys):
    task, disp_dir = reference_submission
    full = config_for_task(task, "val")
    config_path = tmp_path / "Toy_VAL_evaluation_config.json"  # SDlogJ and Dice, first pair, unmasked
    write_eval_config(config_path, EvalConfig(full.task_name, full.methods[:2], full.expected_shape, full.pairs[:1]))
    code = main(["evaluate", str(task.root), str(disp_dir), "--config", str(config_path), "--out", str(tmp_path / "o")])
    assert code == 0
    result = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert list(result["cases"]) == ["0001_0000<--0001_0001"]
    assert set(result["aggregates"]) == {"LogJacDetStd", "DSC", "FoldingFraction", "NDV"}
    assert result["unexpected_files"] == ["disp_0002_0002.npz"]
    # masked_evaluation false in this config: the SDlogJ differs from the masked official value above
    assert result["cases"]["0001_0000<--0001_0001"]["LogJacDetStd"]["mean"] != pytest.approx(0.059836981105318814)
    assert "ignored disp_0002_0002.npz" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["no dataset", "no disp folder", "bad config"])
def test_cli_errors_are_one_line(reference_submission, tmp_path, capsys, problem):
    task, disp_dir = reference_submission
    args = ["evaluate", str(task.root), str(disp_dir), "--out", str(tmp_path / "out")]
    if problem == "no dataset":
        args[1] = str(tmp_path / "nowhere")
    elif problem == "no disp folder":
        args[2] = str(tmp_path / "nowhere")
    else:
        (tmp_path / "c.json").write_text("{}")
        args += ["--config", str(tmp_path / "c.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("regbench: error: ") and len(err.strip().splitlines()) == 1


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_npz_field_fails_only_its_pair(reference_submission):
    task, disp_dir = reference_submission
    _truncate(disp_dir / "disp_0002_0002.npz")
    evaluation = evaluate_folder(task, disp_dir)
    assert list(evaluation.failures) == ["0002_0000<--0002_0001"]
    assert evaluation.failures["0002_0000<--0002_0001"].startswith(
        f"{disp_dir / 'disp_0002_0002.npz'}: not a readable npz file (BadZipFile")
    assert evaluation.to_json()["cases"]["0001_0000<--0001_0001"]["DSC"]["mean"] == pytest.approx(
        OFFICIAL_CASES["0001_0000<--0001_0001"]["DSC"]["mean"])


def test_cli_scores_the_other_pairs_when_a_npz_field_is_truncated(reference_submission, tmp_path, capsys):
    task, disp_dir = reference_submission
    _truncate(disp_dir / "disp_0002_0002.npz")
    code = main(["evaluate", str(task.root), str(disp_dir), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0 and "scored 1 of 2 pairs" in captured.out
    assert captured.err.strip().splitlines() == [
        f"regbench: failed 0002_0000<--0002_0001: {disp_dir / 'disp_0002_0002.npz'}: not a readable npz file "
        "(BadZipFile: File is not a zip file)"]


@pytest.fixture
def cardiac(generated_task, tmp_path):
    """(task, disp_dir): a smoke cardiac_mr (1 val pair, 2 test pairs) and an empty folder for fields."""
    (tmp_path / "disp").mkdir()
    return generated_task("cardiac_mr", "smoke"), tmp_path / "disp"


def _zero_fields(task, disp_dir, split):
    for pair in task.pair_ids(split):
        write_field(disp_dir / f"{pair.disp_stem}.nii.gz", task.shape)


def test_cli_without_split_scores_the_split_whose_fields_the_folder_holds(cardiac, tmp_path, capsys):
    task, disp_dir = cardiac
    _zero_fields(task, disp_dir, "test")
    assert main(["evaluate", str(task.root), str(disp_dir), "--out", str(tmp_path / "out")]) == 0
    assert "scored 2 of 2 pairs" in capsys.readouterr().out
    cases = json.loads((tmp_path / "out" / "evaluation.json").read_text())["cases"]
    assert sorted(cases) == sorted(p.key for p in task.pair_ids("test"))


@pytest.mark.parametrize(("held", "split", "message"), [
    (["test"], "val", "holds the fields of 2 of the 2 test pairs and of no val pair; run with --split test"),
    (["val"], "test", "holds the fields of 1 of the 1 val pairs and of no test pair; run with --split val"),
    (["val", "test"], None, "holds fields of 1 val and 2 test pairs; choose one with --split val or --split test"),
    ([], None, "holds no field of a val or test pair of cardiac_mr (fields are named like disp_"),
])
def test_cli_names_the_split_the_folder_holds_and_writes_nothing(cardiac, tmp_path, capsys, held, split, message):
    task, disp_dir = cardiac
    for name in held:
        _zero_fields(task, disp_dir, name)
    args = ["evaluate", str(task.root), str(disp_dir), "--out", str(tmp_path / "out")]
    assert main(args + (["--split", split] if split else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"regbench: error: {disp_dir}: {message}")
    assert not (tmp_path / "out").exists()


def test_cli_exits_non_zero_when_no_pair_could_be_scored(cardiac, tmp_path, capsys):
    task, disp_dir = cardiac
    for pair in task.pair_ids("test"):
        (disp_dir / f"{pair.disp_stem}.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["evaluate", str(task.root), str(disp_dir), "--split", "test", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"regbench: error: {disp_dir}: no pair could be scored (see the failures above)"
    assert all(line.startswith("regbench: failed ") for line in err[:-1]) and len(err) == 3
