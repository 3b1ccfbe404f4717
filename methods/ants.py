"""ANTs: an affine map, then SyN, the symmetric diffeomorphic normalisation, run by antspyx's antsRegistration.

Avants, Epstein, Grossman and Gee, "Symmetric diffeomorphic image registration with cross-correlation",
Medical Image Analysis 12(1) 2008, doi:10.1016/j.media.2007.06.004; the stages and settings are those of
ANTs' ``antsRegistrationSyN.sh`` (Avants et al., "A reproducible evaluation of ANTs similarity metric
performance in brain image registration", NeuroImage 54(3) 2011, doi:10.1016/j.neuroimage.2010.09.025).

The images go to antsRegistration as NIfTI files with their affines, which ITK reads as LPS geometry (the
convention ``regbench.itk_transform`` follows back), so the stages run in millimetres: the moving grid's
centre is moved onto the fixed one's, then [a rigid and] an affine stage maximise Mattes mutual information on
a regular sample of the voxels, then SyN optimises a pair of diffeomorphisms that meet half way, with local
cross-correlation for pairs of one modality and mutual information for multi-modal pairs. The forward
transforms, composed by antsApplyTransforms into one displacement field on the fixed grid, become the
Learn2Reg field. Intensities are winsorised to the 0.5-99.5 % quantiles first, as the script does.

One departure from the script, in every preset: it starts from the images' centres of mass, which assumes
intensities that are mass-like (non-negative, zero outside the body). CT's air at -1000 HU and MR signals
mapped through contrast changes are not: on the multi-modal test pair of tests/methods/test_ants.py the
centre-of-mass start sent SyN 5-17 voxels astray (Dice 0.08, identity 0.75). Learn2Reg pairs share a
pre-aligned grid, so the grid centres are the safer start (``start="mass"`` restores the script's).

antsRegistration runs in a child process, as ANTs' scripts run it: ITK reads its thread count
(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS, set from ``threads``) once per process, and a crash of the tool fails
one pair, not the benchmark. ANTs' Mattes mutual information sums its histogram in an order that depends on
thread timing, so with more than one thread the result changes from run to run (by up to 0.3 voxels on a
small test pair, the optimisation amplifying rounding); the default of one thread repeats exactly for a seed.
antspyx is looked for only when a pair is registered: without it the method is still listed, and each pair
fails with a RegbenchError saying what to install.

Settings: the defaults stop the pyramids at 4x, with 200/100/50 affine and 50/30/10 SyN iterations and a CC
radius of 2, about one core-minute per 64^3 pair (brain_mr: 47 s of CPU on one thread, 0.4 GB). The last,
full-resolution SyN level costs most of it but matters: without it (50/30/0) Dice on an abdomen_ct pair fell
from 0.88 to 0.86 at a third of the time. The paper preset is the script's (see ``AntsParams.paper``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import nibabel as nib
import numpy as np

from regbench import io
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.itk_transform import disp_from_physical_field, itk_error_reason
from regbench.method import Capabilities, Hyperparams, Method, Resources, check_choice, similarity_by_modality
from regbench.pair import Pair

SIMILARITIES = ("auto", "cc", "mi")
STARTS = {"centre": 0, "mass": 1}  # antsRegistration's --initial-moving-transform [fixed,moving,<code>]


@dataclass(frozen=True)
class AntsParams(Hyperparams):
    """Hyperparameters of ``ants``, named after antsRegistration's options.

    Attributes:
        start: what the first transform aligns: the grid ``centre``s, or the intensities' centres of ``mass``.
        similarity: SyN's metric: ``auto`` (CC for mono-modal, MI for multi-modal pairs), ``cc`` or ``mi``.
        cc_radius: radius of the local cross-correlation window, voxels of each level (the script's -r).
        bins: histogram bins of Mattes mutual information (linear stages, and SyN's ``mi``).
        sampling: fraction of voxels the linear stages sample (ANTs' "Regular" strategy, jittered).
        rigid: whether a rigid stage precedes the affine one, as in the script.
        linear_step: gradient step of the rigid and affine stages.
        linear_iterations: iterations per level of each linear stage, coarse to fine.
        linear_shrink: shrink factor of each linear level.
        linear_sigmas: Gaussian smoothing of each linear level, voxels.
        syn_step: SyN's gradient step.
        update_sigma: variance (voxels^2) of the Gaussian smoothing of each update field (SyN's 2nd argument).
        total_sigma: variance of the smoothing of the total field (SyN's 3rd argument; 0 leaves it alone).
        syn_iterations: SyN iterations per level, coarse to fine.
        syn_shrink: shrink factor of each SyN level.
        syn_sigmas: Gaussian smoothing of each SyN level, voxels.
        convergence: a level stops early when the slope of the metric over ``window`` iterations is below this.
        window: iterations the convergence test looks back over.
        winsorize: lower and upper intensity quantiles every image is clipped to.
    """

    start: str = "centre"
    similarity: str = "auto"
    cc_radius: int = 2
    bins: int = 32
    sampling: float = 0.25
    rigid: bool = False
    linear_step: float = 0.1
    linear_iterations: tuple[int, ...] = (200, 100, 50)
    linear_shrink: tuple[int, ...] = (4, 2, 1)
    linear_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    syn_step: float = 0.1
    update_sigma: float = 3.0
    total_sigma: float = 0.0
    syn_iterations: tuple[int, ...] = (50, 30, 10)
    syn_shrink: tuple[int, ...] = (4, 2, 1)
    syn_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    convergence: float = 1e-6
    window: int = 10
    winsorize: tuple[float, ...] = (0.005, 0.995)

    def __post_init__(self) -> None:
        check_choice(self, "start", tuple(STARTS))
        check_choice(self, "similarity", SIMILARITIES)
        for stage in ("linear", "syn"):
            counts = {len(getattr(self, f"{stage}_{key}")) for key in ("iterations", "shrink", "sigmas")}
            if len(counts) != 1 or 0 in counts:
                raise RegbenchError(f"{type(self).__name__}: {stage}_iterations, {stage}_shrink and {stage}_sigmas "
                                    "need one entry per level, and at least one level")
            if min(getattr(self, f"{stage}_shrink")) < 1:
                raise RegbenchError(f"{type(self).__name__}: {stage}_shrink factors must be >= 1")
        if len(self.winsorize) != 2 or not 0 <= self.winsorize[0] < self.winsorize[1] <= 1:
            raise RegbenchError(f"{type(self).__name__}: winsorize must be two quantiles 0 <= low < high <= 1, "
                                f"got {self.winsorize}")

    @classmethod
    def paper(cls) -> AntsParams:
        """antsRegistrationSyN.sh's ``-t s`` for images up to 256 voxels a side: rigid + affine + SyN[0.1,3,0]
        with CC radius 4, 8x4x2x1 levels (in single, not the script's double, precision)."""
        return cls(cc_radius=4, rigid=True, linear_iterations=(1000, 500, 250, 100), linear_shrink=(8, 4, 2, 1),
                   linear_sigmas=(3.0, 2.0, 1.0, 0.0), syn_iterations=(100, 70, 50, 20), syn_shrink=(8, 4, 2, 1),
                   syn_sigmas=(3.0, 2.0, 1.0, 0.0))

    @classmethod
    def smoke(cls) -> AntsParams:
        return cls(linear_iterations=(40, 20), linear_shrink=(2, 1), linear_sigmas=(1.0, 0.0),
                   syn_iterations=(20, 10), syn_shrink=(2, 1), syn_sigmas=(1.0, 0.0))


def _levels(values: Sequence[float], unit: str = "") -> str:
    """antsRegistration's ``AxBxC`` level notation."""
    return "x".join(f"{v:g}" for v in values) + unit


class Ants(Method):
    """Affine then SyN by antsRegistration (antspyx), the classic baseline of inter-subject registration."""

    name = "ants"
    Params = AntsParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    resources: ClassVar[Resources] = Resources(threads=1, mem_mb=1000, pair_seconds=90)
    params: AntsParams

    def similarity_name(self, pair: Pair) -> str:
        """SyN's metric for this pair: the configured one, or CC / MI by modality."""
        return similarity_by_modality(self.params.similarity, pair, mono="cc", multi="mi")

    def arguments(self, pair: Pair, fixed: str, moving: str, output: str) -> list[str]:
        """The antsRegistration command line for image files ``fixed`` and ``moving`` (see the module docstring)."""
        p = self.params
        linear_metric = f"MI[{fixed},{moving},1,{p.bins},Regular,{p.sampling:g}]"
        syn_metric = (f"CC[{fixed},{moving},1,{p.cc_radius}]" if self.similarity_name(pair) == "cc"
                      else f"MI[{fixed},{moving},1,{p.bins}]")

        def stage(transform: str, metric: str, kind: str) -> list[str]:
            iterations, shrink, sigmas = (getattr(p, f"{kind}_{key}") for key in ("iterations", "shrink", "sigmas"))
            return ["--transform", transform, "--metric", metric,
                    "--convergence", f"[{_levels(iterations)},{p.convergence:g},{p.window}]",
                    "--shrink-factors", _levels(shrink), "--smoothing-sigmas", _levels(sigmas, "vox")]

        linear = ["Rigid", "Affine"] if p.rigid else ["Affine"]
        stages = [arg for kind in linear for arg in stage(f"{kind}[{p.linear_step:g}]", linear_metric, "linear")]
        stages += stage(f"SyN[{p.syn_step:g},{p.update_sigma:g},{p.total_sigma:g}]", syn_metric, "syn")
        return ["--dimensionality", str(pair.ndim), "--float", "1", "--output", f"[{output},{output}Warped.nii]",
                "--interpolation", "Linear", "--use-histogram-matching", "0",
                "--winsorize-image-intensities", f"[{p.winsorize[0]:g},{p.winsorize[1]:g}]",
                "--initial-moving-transform", f"[{fixed},{moving},{STARTS[p.start]}]", *stages,
                "--write-composite-transform", "1", "--collapse-output-transforms", "1",
                # ANTs takes 0 as "seed from the clock", so the method's seed is shifted by one.
                "--random-seed", str(self.seed + 1)]

    def run_tool(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """ANTs' own result: its forward transform as a displacement field d(p) (LPS mm, on the fixed grid) and
        the moving image it resampled onto the fixed grid (linear), both in array order."""
        if importlib.util.find_spec("ants") is None:
            raise RegbenchError("method 'ants' needs antspyx, which is not installed; pip install antspyx")
        with tempfile.TemporaryDirectory(prefix="regbench_ants_") as tmp:
            fixed_path, moving_path, output = (str(Path(tmp) / name) for name in ("fixed.nii", "moving.nii", "out"))
            io.write_image(fixed_path, pair.fixed.image)
            io.write_image(moving_path, pair.moving.image)
            env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(self.threads)}
            done = subprocess.run([sys.executable, "-c", _CHILD, str(pair.ndim), fixed_path, moving_path, output,
                                   *self.arguments(pair, fixed_path, moving_path, output)],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RegbenchError(f"ants: antsRegistration failed on pair {pair.id.key} (exit status "
                                    f"{done.returncode}): {itk_error_reason(done.stdout + done.stderr)}")
            field = np.asarray(nib.load(f"{output}Field.nii").dataobj, dtype=np.float64)
            warped = np.asarray(nib.load(f"{output}Warped.nii").dataobj, dtype=np.float32)
        return field.reshape(*pair.fixed.image.shape, pair.ndim), warped.reshape(pair.fixed.image.shape)

    def estimate(self, pair: Pair) -> Displacement:
        field, _ = self.run_tool(pair)
        return disp_from_physical_field(field, pair.fixed.image, pair.moving.image)


# The child process: ITK reads its thread count once per process, and a crash of the tool must not take the
# benchmark down with it. It loads antspyx's compiled ANTs programs (the package's ``lib`` extension, what
# ``ants.registration`` calls) without the Python package, whose imports cost 1.7 s a registration, registers,
# then has antsApplyTransforms compose the forward transforms into one field on the fixed grid.
_CHILD = """
import importlib.machinery, importlib.util, os, sys
ndim, fixed, moving, output, *arguments = sys.argv[1:]
spec = importlib.util.find_spec("ants")
found = [path for suffix in importlib.machinery.EXTENSION_SUFFIXES
         if os.path.isfile(path := os.path.join(spec.submodule_search_locations[0], "lib" + suffix))]
if not found:
    sys.exit("antspyx's compiled ANTs programs (ants/lib.*) not found; reinstall antspyx")
lib_spec = importlib.util.spec_from_file_location("ants.lib", found[0])
lib = importlib.util.module_from_spec(lib_spec)
lib_spec.loader.exec_module(lib)
if (code := lib.antsRegistration(arguments)) != 0:
    sys.exit(f"antsRegistration exited with status {code}")
compose = ["--dimensionality", ndim, "--input", moving, "--reference-image", fixed,
           "--transform", output + "Composite.h5", "--output", "[" + output + "Field.nii,1]", "--float", "0"]
if (code := lib.antsApplyTransforms(compose)) != 0:
    sys.exit(f"antsApplyTransforms exited with status {code}")
"""
