"""The claims table: a comparison holds only where the claimed method is better and a paired test separates it,
not where it is worse or tied; too few paired samples, a missing method or a missing benchmark make a claim untestable,
saying why; TRE counts lower as better."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regbench.metrics.claims import ABLATIONS, FAILS, GRADIRN_SIZE, HOLDS, UNTESTED, claims_markdown, claims_table

# the config's ablation variants (config/config.yaml variants): name -> (method, settings)
VARIANTS = {"vrnet_initial": ("vrnet", {"cascades": 0}), "csain_untuned": ("csain", {"tune": False}),
            "voxelmorph_adversarial": ("voxelmorph", {"augment": "adversarial"})}


def _metrics(dice: dict[str, float], pairs: int, *, metric: str = "DSC", runtime: dict[str, float] | None = None,
             calibration: float | None = None, seed: int = 0) -> pd.DataFrame:
    """A task's long metrics table: per method and pair two labels of ``metric`` around its level in ``dice``
    (the same pair-to-pair spread for every method), a runtime and a Failed row."""
    rng = np.random.default_rng(seed)
    spread = rng.normal(0.0, 0.05, pairs)
    rows = []
    for method, level in dice.items():
        for case in range(pairs):
            pair = f"{case:04d}_0000<--{case:04d}_0001"
            noise = rng.normal(0.0, 0.002, 2)
            rows += [(method, pair, label, metric, level + spread[case] + noise[label - 1]) for label in (1, 2)]
            rows += [(method, pair, None, "Runtime_s", (runtime or {}).get(method, 1.0) * (1 + 0.1 * case)),
                     (method, pair, None, "Failed", 0.0)]
            if calibration is not None and method == "bayesian":
                rows.append((method, pair, None, "CalibrationError", calibration))
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    table["label"] = table["label"].astype("Int64")
    return table


def _row(table: pd.DataFrame, claimed: str, other: str, task: str | None = None) -> pd.Series:
    rows = table[(table["claimed"] == claimed) & (table["other"] == other) & (table["claim"] != GRADIRN_SIZE.claim)]
    if task is not None:
        rows = rows[rows["task"] == task]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_a_better_method_holds_a_worse_or_tied_one_does_not():
    metrics = {"brain": _metrics({"gradirn": 0.80, "voxelmorph": 0.75, "vrnet": 0.70, "csain": 0.75}, pairs=8)}
    table = claims_table(metrics)
    gradirn = _row(table, "gradirn", "voxelmorph")
    assert gradirn["verdict"] == HOLDS and gradirn["p_value"] < 0.05 and gradirn["n"] == 16  # pairs x labels
    assert np.isclose(gradirn["claimed_value"] - gradirn["other_value"], 0.05, atol=0.01)
    assert _row(table, "vrnet", "voxelmorph")["verdict"] == FAILS  # worse
    tied = _row(table, "csain", "voxelmorph")
    assert tied["verdict"] == FAILS and tied["p_value"] > 0.05  # level: not separated


def test_tre_and_runtime_count_lower_as_better():
    metrics = {"thorax": _metrics({"gradirn": 2.0, "voxelmorph": 3.0, "ants": 3.05}, pairs=7, metric="TRE_kp",
                                  runtime={"voxelmorph": 0.5, "ants": 60.0})}
    table = claims_table(metrics)
    assert _row(table, "gradirn", "voxelmorph")["verdict"] == HOLDS
    comparable = table[(table["claimed"] == "voxelmorph") & (table["claim"].str.startswith("as accurate"))].iloc[0]
    assert comparable["verdict"] == HOLDS and comparable["metric"] == "TRE_kp"  # 0.05 mm apart: within 0.5 mm
    faster = table[(table["claimed"] == "voxelmorph") & (table["claim"].str.contains("faster"))].iloc[0]
    assert faster["verdict"] == HOLDS and faster["metric"] == "Runtime_s"


def test_too_few_pairs_or_a_missing_method_is_untestable_and_says_why():
    table = claims_table({"abdomen": _metrics({"gradirn": 0.9, "voxelmorph": 0.5}, pairs=2)})
    few = _row(table, "gradirn", "voxelmorph")  # 2 pairs x 2 labels: four paired samples
    assert few["verdict"] == UNTESTED and "4 paired samples" in few["why"]
    absent = _row(table, "vrnet", "voxelmorph")
    assert absent["verdict"] == UNTESTED and "no task on which both vrnet and voxelmorph ran" in absent["why"]
    mad = table[table["claimed"] == "MAD"].iloc[0]
    assert mad["verdict"] == UNTESTED and "bench_mad_capture_range.py" in mad["produced_by"]
    cheart = table[table["claimed"] == "cheart"].iloc[0]
    assert cheart["verdict"] == UNTESTED and "cardiac_cohort" in cheart["why"]


def test_instance_optimisation_rows_are_compared_with_their_method_per_task():
    metrics = {"a": _metrics({"voxelmorph": 0.70, "voxelmorph+io": 0.78}, pairs=6),
               "b": _metrics({"voxelmorph": 0.70, "voxelmorph+io": 0.69}, pairs=6, seed=1)}
    table = claims_table(metrics, instance_rows={"voxelmorph+io": "voxelmorph"})
    assert _row(table, "voxelmorph+io", "voxelmorph", "a")["verdict"] == HOLDS
    assert _row(table, "voxelmorph+io", "voxelmorph", "b")["verdict"] == FAILS


def test_calibration_capture_range_and_completion_come_from_their_tables():
    metrics = {"a": _metrics({"bayesian": 0.8, "voxelmorph": 0.8}, pairs=2, calibration=0.04),
               "b": _metrics({"bayesian": 0.8}, pairs=2, calibration=0.3)}
    capture = pd.DataFrame({"method": ["MAD", "MAD", "MI", "MI", "NGF", "NGF", "MAD"], "size": [0, 40, 0, 40, 0, 40, 60],
                            "captured": [True, True, True, False, True, True, False]})
    generative = _completion(gain=-0.01, p_value=0.001)
    table = claims_table(metrics, capture_range=capture, generative=generative, cohort_in_run=True)
    calibrated = table[table["metric"] == "CalibrationError"].set_index("task")["verdict"]
    assert calibrated.to_dict() == {"a": HOLDS, "b": FAILS}
    mad = table[table["claimed"] == "MAD"].iloc[0]
    # beyond size 0: MAD captures 1 of 2, NGF (the better other) 1 of 1
    assert mad["verdict"] == FAILS and mad["other"] == "NGF" and mad["claimed_value"] == 0.5
    cheart = table[table["claimed"] == "cheart"].iloc[0]
    assert cheart["verdict"] == FAILS and cheart["other_value"] == 0.89
    page = claims_markdown(table, ["a", "b"])
    assert page.startswith("# Claims") and page.count("\n| ") == len(table) + 1


def _completion(gain: float, p_value: float) -> pd.DataFrame:
    """A generative evaluation's completion rows: Dice of each model and the paired gain of the conditioned one."""
    return pd.DataFrame({"analysis": ["completion"] * 5,
                         "measure": ["dice"] * 3 + ["dice gain over unconditioned", "dice gain p over unconditioned"],
                         "group": ["later frames"] * 5, "model": ["cheart", "unconditioned", "copy_first", "cheart",
                                                                  "cheart"],
                         "value": [0.89 + gain, 0.89, 0.70, gain, p_value]})


@pytest.mark.parametrize("gain, p_value, verdict", [(0.004, 0.001, HOLDS), (0.004, 0.2, FAILS),
                                                    (-0.004, 0.001, FAILS)])
def test_the_conditions_help_completion_only_when_the_paired_gain_is_positive_and_separated(gain, p_value, verdict):
    table = claims_table({}, generative=_completion(gain, p_value), cohort_in_run=True)
    cheart = table[table["claimed"] == "cheart"].iloc[0]
    assert cheart["verdict"] == verdict and cheart["p_value"] == p_value
    assert cheart["claimed_value"] == pytest.approx(0.89 + gain) and cheart["other_value"] == 0.89


def test_completion_without_the_paired_gain_is_not_tested():
    plain = _completion(0.004, 0.001).iloc[:3]
    cheart = claims_table({}, generative=plain, cohort_in_run=True).query("claimed == 'cheart'").iloc[0]
    assert cheart["verdict"] == UNTESTED and "paired completion Dice" in cheart["why"]


def test_fewer_parameters_compares_the_networks_counts_per_task():
    metrics = {"a": _metrics({"gradirn": 0.8, "voxelmorph": 0.8}, pairs=2)}
    table = claims_table(metrics, parameters={"a": {"gradirn": 30_000, "voxelmorph": 100_000},
                                              "b": {"gradirn": 30_000, "voxelmorph": 20_000}, "c": {"gradirn": 1}})
    sizes = table[table["metric"] == "learnable parameters"].set_index("task")
    assert sizes["verdict"].to_dict() == {"a": HOLDS, "b": FAILS}  # c: no voxelmorph there, no row
    assert sizes.loc["a", "why"] == "0.30 times the other's" and sizes.loc["b", "claimed_value"] == 30_000
    untested = claims_table(metrics)
    assert untested[untested["claim"] == GRADIRN_SIZE.claim]["verdict"].tolist() == [UNTESTED]


def _track(method: str, accuracy: list[float]) -> pd.DataFrame:
    """A robustness table of three pairs at two budgets: the clean row and the adversarial rows of ``accuracy``."""
    rows = [{"pair": f"p{i}", "budget": 0.0, "kind": "clean", "metric": "DSC", "accuracy": 0.9} for i in range(3)]
    rows += [{"pair": f"p{i}", "budget": budget, "kind": "adversarial", "metric": "DSC", "accuracy": value}
             for (i, budget), value in zip([(i, b) for i in range(3) for b in (0.5, 1.0)], accuracy)]
    return pd.DataFrame(rows).assign(method=method)


def test_adversarial_augmentation_is_judged_on_the_adversarial_rows_of_the_track():
    augmented = _track("voxelmorph_adversarial", [0.80, 0.70, 0.82, 0.66, 0.79, 0.71])
    plain = _track("voxelmorph", [0.70, 0.50, 0.72, 0.52, 0.69, 0.55])
    table = claims_table({}, robustness={"cardiac_mr": pd.concat([augmented, plain])}, variants=VARIANTS)
    row = _row(table, "voxelmorph_adversarial", "voxelmorph", "cardiac_mr")
    assert row["verdict"] == HOLDS and row["n"] == 6 and "rule robustness" in row["produced_by"]
    assert abs(row["claimed_value"] - np.mean([0.80, 0.70, 0.82, 0.66, 0.79, 0.71])) < 1e-12
    worse = claims_table({}, robustness={"cardiac_mr": pd.concat([_track("voxelmorph_adversarial", [0.5] * 6), plain])},
                         variants=VARIANTS)
    assert _row(worse, "voxelmorph_adversarial", "voxelmorph", "cardiac_mr")["verdict"] == FAILS
    absent = _row(claims_table({}, variants=VARIANTS), "voxelmorph_adversarial", "voxelmorph")
    assert absent["verdict"] == UNTESTED


def test_the_ablation_variants_are_compared_with_their_method():
    table = claims_table({"brain": _metrics({"vrnet": 0.85, "vrnet_initial": 0.80, "csain": 0.8, "csain_untuned": 0.8},
                                            pairs=6)}, variants=VARIANTS)
    assert _row(table, "vrnet", "vrnet_initial", "brain")["verdict"] == HOLDS
    assert _row(table, "csain", "csain_untuned", "brain")["verdict"] == FAILS
    # found by method and settings, whatever the config names the variant; a variant that is not the ablation is not
    renamed = {"cascade_off": ("vrnet", {"cascades": 0, "iterations": 10}), "other": ("vrnet", {"cascades": 2})}
    table = claims_table({"brain": _metrics({"vrnet": 0.85, "cascade_off": 0.80, "other": 0.9}, pairs=6)},
                         variants=renamed)
    cascade = table[table["claim"].str.startswith(ABLATIONS[0].claim)]
    assert cascade[["claimed", "other", "verdict"]].values.tolist() == [["vrnet", "cascade_off", HOLDS]]
    assert "(variant cascade_off: cascades: 0)" in cascade["claim"].iloc[0]
    none = claims_table({"brain": _metrics({"vrnet": 0.85}, pairs=6)})
    row = none[none["claim"] == ABLATIONS[0].claim].iloc[0]
    assert row["verdict"] == UNTESTED and row["why"] == "the run has no variant of vrnet with cascades: 0 (config variants)"
