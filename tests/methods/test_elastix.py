"""elastix (itk-elastix): multi-modal pairs, the parameter maps it writes, and failures that reach the runner as
one line.

The conversion of its field, on grids that differ in every respect, is checked in
tests/regbench/test_itk_transform.py; the contract test covers determinism and the easy mono-modal pair.
"""

from __future__ import annotations

import sys

import pytest

from regbench import methods
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.registry import list_methods, method_class
from regbench.runner import register_split

Elastix = method_class("elastix")


def test_multimodal_pair_beats_identity_leaving_no_files_and_itk_threads_as_they_were(synthetic_pair, mean_dice,
                                                                                         tmp_path, monkeypatch):
    itk = pytest.importorskip("itk")
    pair, _ = synthetic_pair((48, 40), seed=5, multimodal=True)
    before = itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads()
    monkeypatch.chdir(tmp_path)  # transformix writes its field to the working directory unless told otherwise
    disp = Elastix.configure(scale="smoke", threads=1).register(pair)
    assert itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads() == before
    assert not list(tmp_path.iterdir())
    baseline = mean_dice(pair, Displacement.zeros(pair.fixed.image.shape))
    # Intensities go through sin(2.5 pi v), a non-monotone map that mutual information handles;
    # measured Dice 0.55 -> 0.79.
    assert mean_dice(pair, disp) > baseline + 0.1


def test_parameter_maps_of_the_paper_preset_are_elastix_defaults():
    affine, bspline = Elastix(Elastix.Params.paper(), seed=4).parameter_maps()
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in {**affine, **bspline}.values())
    assert affine["Transform"] == ["AffineTransform"] and bspline["Transform"] == ["BSplineTransform"]
    assert affine["Metric"] == ["AdvancedMattesMutualInformation"]
    assert bspline["Metric"] == ["AdvancedMattesMutualInformation", "TransformBendingEnergyPenalty"]
    assert bspline["Metric1Weight"] == ["1"] and bspline["FinalGridSpacingInPhysicalUnits"] == ["10"]
    assert bspline["NumberOfResolutions"] == ["4"] and bspline["MaximumNumberOfIterations"] == ["256"]
    assert bspline["GridSpacingSchedule"] == ["8", "4", "2", "1"]  # 2^(n - 1 - level), elastix's default
    assert affine["RandomSeed"] == ["5"] and affine["NumberOfSpatialSamples"] == ["2048"]
    # Without a penalty the B-spline stage has one metric and a single-metric registration.
    _, plain = Elastix(Elastix.Params(similarity="ncc")).parameter_maps()
    assert plain["Metric"] == ["AdvancedNormalizedCorrelation"]
    assert plain["Registration"] == ["MultiResolutionRegistration"] and "Metric1Weight" not in plain


def test_a_real_failure_of_the_tool_is_a_one_line_regbench_error(synthetic_pair):
    pytest.importorskip("itk")
    import dataclasses

    from regbench.image import Image
    from regbench.pair import Pair

    pair, _ = synthetic_pair((24, 28, 20), seed=1)
    tiny = [dataclasses.replace(case, image=Image(case.image.data[:3, :3, :3].copy())) for case in (pair.fixed,
                                                                                                   pair.moving)]
    # Too small for the Gaussian pyramid: elastix logs the reason, which the error carries.
    with pytest.raises(RegbenchError, match=r"^elastix: registration failed on pair 0001_0000<--0002_0000: "
                                            r"RecursiveGaussianImageFilter: The number of pixels along direction "
                                            r"0 is less than 4\.[^\n]*$"):
        Elastix.configure(scale="smoke").register(Pair(pair.id, *tiny))


def test_without_itk_elastix_the_method_is_listed_and_every_pair_fails_with_one_line(generated_task, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "itk", None)  # `import itk` now fails
    monkeypatch.delitem(sys.modules, "regbench.methods.elastix")  # both restored after the test
    monkeypatch.delattr(methods, "elastix")
    assert "elastix" in list_methods()
    fresh = method_class("elastix")
    assert fresh is not Elastix
    table = register_split(fresh.configure(scale="smoke"), generated_task("cardiac_mr", "smoke"), tmp_path)
    assert set(table["status"]) == {"failed"}
    messages = set(table["message"])
    assert len(messages) == 1 and "\n" not in next(iter(messages))
    assert next(iter(messages)).startswith("RegbenchError: method 'elastix' needs itk-elastix, which is not installed")
    assert next(iter(messages)).endswith("pip install itk-elastix")


def test_settings_are_checked():
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        Elastix.Params(similarity="nmi")
    with pytest.raises(RegbenchError, match="resolutions must be >= 1"):
        Elastix.Params(resolutions=0)
    with pytest.raises(RegbenchError, match="grid_spacing_mm must be > 0"):
        Elastix.Params(grid_spacing_mm=0.0)
