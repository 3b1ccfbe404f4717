"""ANTs (antspyx): multi-modal pairs, the command line it builds, and failures that reach the runner as one line.

The conversion of its field, on grids that differ in every respect, is checked in
tests/regbench/test_itk_transform.py; the contract test covers determinism and the easy mono-modal pair.
"""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import numpy as np
import pytest

from regbench import methods
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.registry import list_methods, method_class
from regbench.runner import register_split

Ants = method_class("ants")


def test_multimodal_pair_uses_mutual_information_and_beats_identity(synthetic_pair, mean_dice):
    pytest.importorskip("ants")
    # 64 x 56 pixels: on 48 x 40 the affine stage's 25 % sample (480 pixels) is too few for 32 x 32 histogram
    # bins, and the affine map it finds is worse than none (Dice 0.46, identity 0.75).
    pair, _ = synthetic_pair((64, 56), seed=5, multimodal=True)
    method = Ants.configure(scale="smoke")
    assert pair.multimodal and method.similarity_name(pair) == "mi"
    disp = method.register(pair)
    baseline = mean_dice(pair, Displacement.zeros(pair.fixed.image.shape))
    # Intensities go through sin(2.5 pi v), which CC cannot follow; measured Dice 0.77 -> 0.96.
    assert mean_dice(pair, disp) > baseline + 0.1


def test_command_line_of_the_paper_preset_is_antsRegistrationSyN(synthetic_pair):
    pair, _ = synthetic_pair((24, 28, 20), seed=1)
    args = Ants(Ants.Params.paper(), seed=4).arguments(pair, "f.nii", "m.nii", "out")
    line = " ".join(args)
    assert "--initial-moving-transform [f.nii,m.nii,0]" in line  # grid centres (see the module docstring)
    assert args.count("--transform") == 3 and "Rigid[0.1]" in args and "Affine[0.1]" in args
    assert "--transform SyN[0.1,3,0] --metric CC[f.nii,m.nii,1,4]" in line
    assert "--convergence [1000x500x250x100,1e-06,10] --shrink-factors 8x4x2x1 --smoothing-sigmas 3x2x1x0vox" in line
    assert "--convergence [100x70x50x20,1e-06,10]" in line
    assert "MI[f.nii,m.nii,1,32,Regular,0.25]" in args
    assert "--winsorize-image-intensities [0.005,0.995]" in line
    assert line.endswith("--random-seed 5")  # ANTs reads 0 as "from the clock": seed + 1
    multimodal, _ = synthetic_pair((24, 28, 20), seed=1, multimodal=True)
    args = Ants(Ants.Params(start="mass")).arguments(multimodal, "f.nii", "m.nii", "out")
    assert "MI[f.nii,m.nii,1,32]" in args and "[f.nii,m.nii,1]" in args


def test_threads_reach_the_child_process_and_its_failure_is_one_line(synthetic_pair, monkeypatch):
    pytest.importorskip("ants")
    pair, _ = synthetic_pair((24, 28, 20), seed=1)
    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs["env"], command=command)
        stderr = ("Exception Object caught:\n\nitk::ExceptionObject (0x55d1)\nLocation: \"unknown\"\n"
                  "Description: ITK ERROR: ImageMomentsCalculator(0x5640): Compute(): Total Mass of the image "
                  "was zero.\n\nTraceback (most recent call last):\nRuntimeError: Registration failed\n")
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(RegbenchError) as caught:
        Ants(threads=3).register(pair)
    assert seen["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "3" and seen["command"][0] == sys.executable
    assert str(caught.value) == ("ants: antsRegistration failed on pair 0001_0000<--0002_0000 (exit status 1): "
                                 "ImageMomentsCalculator: Compute(): Total Mass of the image was zero.")


def test_a_real_failure_of_the_tool_is_a_one_line_regbench_error(synthetic_pair):
    pytest.importorskip("ants")
    from regbench.image import Image
    from regbench.pair import Pair

    pair, _ = synthetic_pair((48, 40), seed=1)
    blank = dataclasses.replace(pair.moving, image=Image(np.zeros((48, 40), np.float32)))
    # The centre-of-mass start of an empty image: ITK refuses to divide by its zero mass.
    with pytest.raises(RegbenchError, match=r"^ants: .*\(exit status 1\): ImageMomentsCalculator: Compute\(\): "
                                            r"Total Mass of the image was zero\.[^\n]*$"):
        Ants.configure(scale="smoke", start="mass").register(Pair(pair.id, pair.fixed, blank))


def test_without_antspyx_the_method_is_listed_and_every_pair_fails_with_one_line(generated_task, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, "ants", None)  # `import ants` now fails, find_spec finds nothing
    monkeypatch.delitem(sys.modules, "regbench.methods.ants")  # both restored after the test
    monkeypatch.delattr(methods, "ants")
    assert "ants" in list_methods()
    fresh = method_class("ants")
    assert fresh is not Ants and importlib.import_module("regbench.methods.ants").Ants is fresh
    task = generated_task("cardiac_mr", "smoke")
    table = register_split(fresh.configure(scale="smoke"), task, tmp_path)
    assert set(table["status"]) == {"failed"}
    assert set(table["message"]) == {"RegbenchError: method 'ants' needs antspyx, which is not installed; "
                                     "pip install antspyx"}


def test_settings_are_checked():
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        Ants.Params(similarity="mattes")
    with pytest.raises(RegbenchError, match="one entry per level"):
        Ants.Params(syn_iterations=(10, 10), syn_shrink=(2,), syn_sigmas=(1.0,))
    with pytest.raises(RegbenchError, match="winsorize"):
        Ants.Params(winsorize=(0.9, 0.1))
