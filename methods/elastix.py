"""elastix: an affine map, then a cubic B-spline free-form deformation, run by itk-elastix.

Klein, Staring, Murphy, Viergever and Pluim, "elastix: a toolbox for intensity-based medical image
registration", IEEE TMI 29(1) 2010, doi:10.1109/TMI.2009.2035616; the B-spline model is Rueckert et al.'s
free-form deformation (IEEE TMI 18(8) 1999, doi:10.1109/42.796284), the optimiser Klein et al.'s adaptive
stochastic gradient descent (IJCV 81 2009, doi:10.1007/s11263-008-0168-y).

Two parameter maps, written here in code, run one after the other on Gaussian pyramids of the images
(smoothed, not downsampled, elastix's default): an affine stage started from the grid centres, then
a B-spline stage on a control-point grid of ``grid_spacing_mm`` at the finest level (twice as coarse per level
above), each maximising Mattes mutual information (or NCC, or minimising MSE) over ``samples`` random points
drawn afresh every iteration, with ASGD's automatic step sizes. Mutual information is elastix's standard
metric for pairs of one modality and of two alike, so it is the default for both. The images go to elastix
with their true geometry (``regbench.itk_transform``); transformix turns the final transform into a
displacement field on the fixed grid, which becomes the Learn2Reg field.

The tool is imported when the method is created (so its import, about 10 s, is not counted in the first pair's
runtime), not when the module is: without itk-elastix the method is still listed, and each pair fails with a
RegbenchError saying what to install. ``threads`` sets elastix's and ITK's thread count for the call; results
repeat exactly for one seed (elastix's RandomSeed) and thread count.

Settings: the defaults use 3 resolutions of 250 iterations per stage and a 16 mm final grid without a bending
penalty, about 18 s of CPU per 64^3 pair on two threads (brain_mr; 1.2 GB with ITK's libraries loaded). The
cost of an iteration is set by ``samples``, not by the image size, so small 2D images gain little. The paper
preset is elastix's default parameter maps (see ``ElastixParams.paper``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.itk_transform import ItkGeometry, disp_from_physical_field, itk_error_reason
from regbench.method import Capabilities, Hyperparams, Method, Resources, check_choice
from regbench.pair import Pair

METRICS = {"mi": "AdvancedMattesMutualInformation", "ncc": "AdvancedNormalizedCorrelation",
           "mse": "AdvancedMeanSquares"}
ParameterMap = dict[str, list[str]]


@dataclass(frozen=True)
class ElastixParams(Hyperparams):
    """Hyperparameters of ``elastix``, named after elastix's parameters.

    Attributes:
        similarity: ``mi`` (Mattes mutual information, for every pair), ``ncc`` or ``mse``.
        bins: NumberOfHistogramBins of mutual information.
        samples: NumberOfSpatialSamples drawn (RandomCoordinate) for each iteration.
        resolutions: NumberOfResolutions of both stages (elastix's default schedule: the Gaussian smoothing
            halves from one level to the next).
        affine_iterations: MaximumNumberOfIterations of the affine stage, per resolution.
        bspline_iterations: MaximumNumberOfIterations of the B-spline stage, per resolution.
        grid_spacing_mm: FinalGridSpacingInPhysicalUnits, the control-point spacing at the finest level.
        bending_weight: weight of TransformBendingEnergyPenalty against the similarity (0: no penalty).
    """

    similarity: str = "mi"
    bins: int = 32
    samples: int = 2048
    resolutions: int = 3
    affine_iterations: int = 250
    bspline_iterations: int = 250
    grid_spacing_mm: float = 16.0
    bending_weight: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self, "similarity", tuple(METRICS))
        for field in ("bins", "samples", "resolutions", "affine_iterations", "bspline_iterations"):
            if getattr(self, field) < 1:
                raise RegbenchError(f"{type(self).__name__}: {field} must be >= 1, got {getattr(self, field)}")
        if self.grid_spacing_mm <= 0 or self.bending_weight < 0:
            raise RegbenchError(f"{type(self).__name__}: grid_spacing_mm must be > 0 and bending_weight >= 0")

    @classmethod
    def paper(cls) -> ElastixParams:
        """elastix's default affine and B-spline maps (itk-elastix ``GetDefaultParameterMap``): 4 resolutions,
        256 iterations, a 10 mm grid, bending energy weighted 1."""
        return cls(resolutions=4, affine_iterations=256, bspline_iterations=256, grid_spacing_mm=10.0,
                   bending_weight=1.0)

    @classmethod
    def smoke(cls) -> ElastixParams:
        """Smoke images keep the field of view at a few dozen voxels of about 8 mm, so the grid is 24 mm (three
        voxels): at 8 mm (one voxel) ASGD's step-size estimation alone took 13 s per 3D pair, and Dice on the
        smoke abdomen_ct/brain_mr/thorax_ct pairs was 0.769/0.800/0.950 against 0.814/0.813/0.954 at 24 mm
        (21/11/23 s against 2.0/2.3/2.4 s)."""
        return cls(samples=1024, resolutions=2, affine_iterations=60, bspline_iterations=60, grid_spacing_mm=24.0)


class Elastix(Method):
    """Affine then B-spline registration by elastix (itk-elastix), the classic parametric baseline."""

    name = "elastix"
    Params = ElastixParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, pair_seconds=30)
    params: ElastixParams

    def __init__(self, params: ElastixParams | None = None, **options: Any) -> None:
        super().__init__(params, **options)
        # ITK's import costs about 10 s of CPU, once per process: paid here, it stays out of the first pair's
        # runtime. A missing tool is reported when a pair is registered.
        with contextlib.suppress(RegbenchError):
            _import_itk_elastix()

    def parameter_maps(self) -> list[ParameterMap]:
        """The affine and the B-spline parameter map (see the module docstring)."""
        p = self.params
        common = {
            "FixedInternalImagePixelType": "float", "MovingInternalImagePixelType": "float",
            "FixedImagePyramid": "FixedSmoothingImagePyramid", "MovingImagePyramid": "MovingSmoothingImagePyramid",
            "NumberOfResolutions": p.resolutions, "Interpolator": "LinearInterpolator",
            "ResampleInterpolator": "FinalLinearInterpolator", "Resampler": "DefaultResampler",
            "DefaultPixelValue": 0, "ImageSampler": "RandomCoordinate", "NumberOfSpatialSamples": p.samples,
            "NewSamplesEveryIteration": "true", "CheckNumberOfSamples": "true", "NumberOfHistogramBins": p.bins,
            "Optimizer": "AdaptiveStochasticGradientDescent", "AutomaticParameterEstimation": "true",
            "RandomSeed": self.seed + 1, "HowToCombineTransforms": "Compose", "WriteResultImage": "true",
        }
        similarity = METRICS[p.similarity]
        affine = {**common, "Registration": "MultiResolutionRegistration", "Metric": similarity,
                  "Transform": "AffineTransform", "AutomaticScalesEstimation": "true",
                  "AutomaticTransformInitialization": "true",
                  "AutomaticTransformInitializationMethod": "GeometricalCenter",
                  "MaximumNumberOfIterations": p.affine_iterations}
        penalty = ({"Registration": "MultiMetricMultiResolutionRegistration",
                    "Metric": [similarity, "TransformBendingEnergyPenalty"], "Metric0Weight": 1.0,
                    "Metric1Weight": p.bending_weight} if p.bending_weight
                   else {"Registration": "MultiResolutionRegistration", "Metric": similarity})
        bspline = {**common, **penalty, "Transform": "BSplineTransform",
                   "FinalGridSpacingInPhysicalUnits": p.grid_spacing_mm,
                   "GridSpacingSchedule": [2.0 ** (p.resolutions - 1 - level) for level in range(p.resolutions)],
                   "MaximumNumberOfIterations": p.bspline_iterations}
        return [{key: [_text(v) for v in (value if isinstance(value, list) else [value])]
                 for key, value in stage.items()} for stage in (affine, bspline)]

    def run_tool(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """elastix's own result: its transform as a displacement field d(p) (LPS mm, on the fixed grid, from
        transformix) and the moving image it resampled onto the fixed grid (linear), both in array order."""
        itk = _import_itk_elastix()
        fixed, moving = _to_itk(itk, pair.fixed.image), _to_itk(itk, pair.moving.image)
        parameters = itk.ParameterObject.New()
        for parameter_map in self.parameter_maps():
            parameters.AddParameterMap(parameter_map)
        with tempfile.TemporaryDirectory(prefix="regbench_elastix_") as tmp, _itk_threads(itk, self.threads):
            try:
                warped, transform = itk.elastix_registration_method(
                    fixed, moving, parameter_object=parameters, number_of_threads=self.threads,
                    log_to_console=False, log_to_file=True, output_directory=tmp, log_file_name="elastix.log")
                field = itk.transformix_deformation_field(moving, transform, log_to_console=False,
                                                          output_directory=tmp)
            except RuntimeError as err:
                log = Path(tmp) / "elastix.log"
                reason = itk_error_reason(log.read_text(errors="replace") if log.is_file() else str(err))
                raise RegbenchError(f"elastix: registration failed on pair {pair.id.key}: {reason}") from err
        return _from_itk_order(itk.array_from_image(field), pair.ndim), _from_itk_order(
            itk.array_from_image(warped), pair.ndim).astype(np.float32)

    def estimate(self, pair: Pair) -> Displacement:
        field, _ = self.run_tool(pair)
        return disp_from_physical_field(field, pair.fixed.image, pair.moving.image)


def _text(value: Any) -> str:
    """A parameter value as elastix reads it (floats without needless digits)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _import_itk_elastix() -> Any:
    try:
        import itk
        itk.ElastixRegistrationMethod  # noqa: B018 — the lazy itk module raises here when elastix is missing
    except (ImportError, AttributeError) as err:
        raise RegbenchError(f"method 'elastix' needs itk-elastix, which is not installed ({err}); "
                            "pip install itk-elastix") from err
    return itk


@contextlib.contextmanager
def _itk_threads(itk: Any, threads: int) -> Iterator[None]:
    """Hold ITK's process-wide thread counts at ``threads`` for one registration, restoring them after (elastix
    sets the global maximum as well as the default, which would otherwise cap every later ITK call)."""
    threader = itk.MultiThreaderBase
    previous = threader.GetGlobalMaximumNumberOfThreads(), threader.GetGlobalDefaultNumberOfThreads()
    threader.SetGlobalMaximumNumberOfThreads(threads)
    threader.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        threader.SetGlobalMaximumNumberOfThreads(previous[0])
        threader.SetGlobalDefaultNumberOfThreads(previous[1])


def _to_itk(itk: Any, image: Image) -> Any:
    """An itk.Image with the image's voxels (float32) and its true ITK geometry.

    ``itk.image_from_array`` reads a numpy array as (z, y, x); the transpose makes ITK's index (i, j, k) the
    array's [i, j, k]."""
    geometry = ItkGeometry.from_image(image)
    result = itk.image_from_array(np.ascontiguousarray(image.data.T, dtype=np.float32))
    result.SetOrigin(geometry.origin.tolist())
    result.SetSpacing(geometry.spacing.tolist())
    result.SetDirection(itk.matrix_from_array(np.ascontiguousarray(geometry.direction)))
    return result


def _from_itk_order(array: np.ndarray, ndim: int) -> np.ndarray:
    """``itk.array_from_image``'s (z, y, x[, components]) layout back to array order (x, y, z[, components])."""
    axes = tuple(reversed(range(ndim))) + tuple(range(ndim, array.ndim))
    return np.ascontiguousarray(np.transpose(array, axes), dtype=np.float64)
