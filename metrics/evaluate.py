"""Scoring Learn2Reg displacement fields: one pair (``evaluate_pair``), a folder (``evaluate_folder``), and
the two result files (``write_evaluation``).

What is scored comes from an evaluation config (``metrics.eval_config``: the official json, or the one a
task's files imply). Official metrics keep their official names and values (``DSC``, ``HD95``,
``LogJacDetStd``, ``TRE_kp``/``TRE_lm``); regbench adds ``HD95_mm`` beside every HD95 (fixed spacing),
``FoldingFraction`` beside SDlogJ, ``DispError_mm``/``DispError95_mm`` where the task has ground truth,
``Runtime_s`` where the caller measured it, and for fields that come with uncertainty (``metrics.uncertainty``)
its calibration against the ground truth and ``DSC_SampleStd`` beside DSC when they come with samples.

Result files, in ``OUT_DIR``:

- ``evaluation.json``: the official layout - ``{"name", "aggregates": {metric: {"mean", "std", "30"}},
  "cases": {"FFFF_MMMM<--FFFF_MMMM": {metric: {"mean", "detailed"}}}, "eval_version": "2.0"}`` - plus
  ``"failed": {case: reason}`` and ``"unexpected_files"``. ``"30"`` is the official 0.7 quantile of the
  case means for SDlogJ and TRE and 0.3 for the rest (HD95 included, as the official code does); for
  regbench's metrics, all lower-is-better, it is the 0.7 quantile, ignoring failed cases.
- ``metrics.csv``: columns ``pair, label, metric, value``, one row per detailed value: ``label`` is the label
  for DSC/HD95/HD95_mm, the keypoint's row in its CSV (from 0) for TRE, and empty for per-case metrics;
  a ``Failed`` row (1 or 0) says whether the pair's field was missing or invalid.

A missing or invalid field (absent, unreadable, wrong shape or channel count, NaN/inf) fails its pair only:
the reason is recorded by name and the pair scores as ``metrics.substitutes`` scores a missing case.

Files are found and read as the official code finds and reads them (``regbench.io.find_disp``/``read_disp``),
except that a NIfTI field stays in its stored precision in memory: every metric converts to float64 slab by
slab, and TRE samples in float64 as the official ``get_fdata`` does, so the numbers are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike

from regbench import io
from regbench.dataset import Split, Task
from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.metrics.dice import case_mean, dice_per_label
from regbench.metrics.displacement_error import displacement_error_mm, evaluation_region
from regbench.metrics.eval_config import EvalConfig, companion_file, config_for_task, keypoint_folder
from regbench.metrics.hd95 import hd95_per_label
from regbench.metrics.jacobian import plausibility
from regbench.metrics.substitutes import RUNTIME, TaskKind, missing_value, task_kind
from regbench.metrics.tre import tre_mm
from regbench.metrics.uncertainty import calibration, dice_spread, std_of
from regbench.metrics.warp import warp_labels_nearest
from regbench.pair import CaseId, PairId

EVAL_VERSION = "2.0"
FOLDING = "FoldingFraction"
DISP_ERROR = "DispError_mm"
DISP_ERROR_95 = "DispError95_mm"
COVERAGE = "Coverage{}sd"
CALIBRATION_ERROR = "CalibrationError"
STD_ERROR_SPEARMAN = "StdErrorSpearman"
SAMPLE_STD_SUFFIX = "_SampleStd"
FAILED = "Failed"
MM_SUFFIX = "_mm"
_LOWER_QUANTILE_KINDS = ("sdlogj", "tre")
_DISP_NAME = re.compile(r"^disp_[0-9_]+\.(nii\.gz|npz)$")

Detailed = float | list[float]


@dataclass(frozen=True)
class PairScores:
    """Every metric of one pair: ``detailed`` maps a metric name to its per-label or per-point list, or to a
    single number for per-case metrics. ``error`` says why the field failed (then the values are the
    missing-case substitutes, and regbench's own metrics are NaN)."""

    pair: PairId
    detailed: dict[str, Detailed]
    error: str | None = None

    def mean(self, metric: str) -> float:
        """The official case value: nan-mean over labels (DSC, HD95), mean over points (TRE), or the value."""
        value = self.detailed[metric]
        return case_mean(np.asarray(value, dtype=np.float64)) if isinstance(value, list) else float(value)


@dataclass(frozen=True)
class _PairData:
    """What scoring a pair reads from the dataset besides keypoints: label maps, fixed mask, spacings."""

    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    fixed_mask: np.ndarray | None
    fixed_spacing: tuple[float, ...]
    moving_spacing: tuple[float, ...]


def _read_map(task: Task, case: CaseId, folder: str, shape: tuple[int, ...], *,
              required: bool) -> np.ndarray | None:
    """A case's label map or mask on the expected grid; None if it is optional and absent."""
    path = companion_file(task, case, folder)
    if not required and not path.is_file():
        return None
    data = io.read_labels(path, ndim=len(shape)).data
    if data.shape != shape:
        raise DatasetError(path, f"shape {data.shape} does not match the expected {shape}")
    return data


def _load_pair_data(task: Task, pair: PairId, config: EvalConfig) -> _PairData:
    """Read only what the metrics need: image voxels never (spacing comes from the headers), moving labels
    for Dice/HD95, fixed labels for those or as the body of the displacement error, the fixed mask if any."""
    shape, ndim = config.spatial_shape, len(config.spatial_shape)
    with_labels = any(m.metric in ("dice", "hd95") for m in config.methods)
    body = with_labels or task.groundtruth_path(pair).is_file()
    return _PairData(
        fixed_labels=_read_map(task, pair.fixed, "labels", shape, required=with_labels) if body else None,
        moving_labels=_read_map(task, pair.moving, "labels", shape, required=True) if with_labels else None,
        fixed_mask=_read_map(task, pair.fixed, "masks", shape, required=False),
        fixed_spacing=io.read_spacing(task.image_path(pair.fixed), ndim=ndim),
        moving_spacing=io.read_spacing(task.image_path(pair.moving), ndim=ndim),
    )


def _keypoints(task: Task, pair: PairId, dest: str, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    folder = keypoint_folder(dest, pair)
    fixed = io.read_keypoints(companion_file(task, pair.fixed, folder, points=True), ndim=ndim)
    moving_path = companion_file(task, pair.moving, folder, points=True)
    moving = io.read_keypoints(moving_path, ndim=ndim)
    if len(fixed) != len(moving):
        raise DatasetError(moving_path, f"{len(moving)} points, but the fixed case {pair.fixed} has {len(fixed)}")
    return fixed, moving


def _hd95_mm(hd95: np.ndarray, data: _PairData, labels: Sequence[int], warped: np.ndarray) -> np.ndarray:
    """HD95 with the fixed spacing: a rescaling of the voxel result on isotropic grids, else recomputed."""
    spacing = data.fixed_spacing
    if len(set(spacing)) == 1:
        return hd95 * spacing[0]
    return hd95_per_label(data.fixed_labels, data.moving_labels, warped, labels, spacing=spacing)


def evaluate_pair(task: Task, pair: PairId, disp: Displacement | np.ndarray, config: EvalConfig, *,
                  spline_dtype: DTypeLike | None = None) -> PairScores:
    """Score one displacement field with every metric of ``config`` (plus regbench's extensions).

    Args:
        task: the dataset the pair belongs to.
        pair: which pair ``disp`` registers.
        disp: (*fixed_spatial, ndim) field in voxels, Learn2Reg layout (already checked for shape and
            finiteness; ``evaluate_folder`` does that for files), with its std and samples if it has any.
        config: what to score.
        spline_dtype: the precision TRE samples the field in; None: the field's own. The official code
            samples a NIfTI field in float64 and an ``.npz`` one in float32; ``evaluate_folder`` matches it.

    Raises:
        DatasetError: a dataset file the metrics need is missing or malformed.
    """
    field_data = disp.data if isinstance(disp, Displacement) else np.asarray(disp)
    data = _load_pair_data(task, pair, config)
    ndim = len(config.spatial_shape)
    sdlogj_mask = data.fixed_mask if config.masked else None  # no mask file: unmasked, as the official code
    detailed: dict[str, Detailed] = {}
    warped = None
    for method in config.methods:
        if method.metric in ("dice", "hd95") and warped is None:
            warped = warp_labels_nearest(data.moving_labels, field_data)
        if method.metric == "sdlogj":
            jacobian = plausibility(field_data, sdlogj_mask)
            detailed[method.name], detailed[FOLDING] = jacobian.sdlogj, jacobian.folding_fraction
        elif method.metric == "dice":
            detailed[method.name] = dice_per_label(data.fixed_labels, data.moving_labels, warped,
                                                   method.labels).tolist()
            if isinstance(disp, Displacement) and disp.samples is not None:
                detailed[method.name + SAMPLE_STD_SUFFIX] = dice_spread(
                    data.fixed_labels, data.moving_labels, disp.samples, method.labels).tolist()
        elif method.metric == "hd95":
            hd95 = hd95_per_label(data.fixed_labels, data.moving_labels, warped, method.labels)
            detailed[method.name] = hd95.tolist()
            detailed[method.name + MM_SUFFIX] = _hd95_mm(hd95, data, method.labels, warped).tolist()
        elif method.metric == "tre":
            fixed_points, moving_points = _keypoints(task, pair, method.dest, ndim)
            detailed[method.name] = tre_mm(fixed_points, moving_points, field_data, data.moving_spacing,
                                           dtype=spline_dtype).tolist()
    truth = task.load_groundtruth(pair)
    if truth is not None:
        region = evaluation_region(config.spatial_shape, data.fixed_mask, data.fixed_labels)
        error = displacement_error_mm(field_data, truth.data, data.moving_spacing, region)
        detailed[DISP_ERROR], detailed[DISP_ERROR_95] = error.mean_mm, error.p95_mm
        std = std_of(disp.std, disp.samples) if isinstance(disp, Displacement) else None
        if std is not None:
            scores = calibration(field_data, std, truth.data, data.moving_spacing, region)
            detailed.update({COVERAGE.format(k): value for k, value in scores.coverage.items()})
            detailed[CALIBRATION_ERROR], detailed[STD_ERROR_SPEARMAN] = scores.calibration_error, scores.spearman
    return PairScores(pair, detailed)


def failed_pair(task: Task, pair: PairId, config: EvalConfig, reason: str) -> PairScores:
    """The scores of a pair whose field is missing or invalid: official metrics get the missing-case
    substitutes (``metrics.substitutes``), regbench's own metrics NaN."""
    kind = task_kind({m.metric for m in config.methods})
    nan = float("nan")
    detailed: dict[str, Detailed] = {}
    for method in config.methods:
        if method.metric == "sdlogj":
            detailed[method.name] = missing_value("sdlogj", kind)
            detailed[FOLDING] = nan
        elif method.metric in ("dice", "hd95"):
            detailed[method.name] = [missing_value(method.metric, kind)] * len(method.labels)
            if method.metric == "hd95":
                detailed[method.name + MM_SUFFIX] = [nan] * len(method.labels)
        elif method.metric == "tre":
            points, _ = _keypoints(task, pair, method.dest, len(config.spatial_shape))
            detailed[method.name] = [missing_value("tre", kind)] * len(points)
    if task.groundtruth_path(pair).is_file():
        detailed[DISP_ERROR] = detailed[DISP_ERROR_95] = nan
    return PairScores(pair, detailed, reason)


@dataclass(frozen=True)
class Evaluation:
    """The scores of every pair of a config, in config order, and what went wrong on the way."""

    config: EvalConfig
    scores: list[PairScores]
    unexpected_files: list[str] = field(default_factory=list)

    @cached_property
    def _kind(self) -> TaskKind:
        return task_kind({m.metric for m in self.config.methods})

    @property
    def failures(self) -> dict[str, str]:
        return {s.pair.key: s.error for s in self.scores if s.error is not None}

    @property
    def metric_names(self) -> list[str]:
        """Every metric present, official ones first in config order, then regbench's."""
        official = [m.name for m in self.config.methods]
        seen = dict.fromkeys(official)
        for scores in self.scores:
            seen.update(dict.fromkeys(scores.detailed))
        return list(seen)

    def _quantile(self, metric: str) -> float:
        kinds = {m.name: m.metric for m in self.config.methods}
        if metric in kinds:
            return 0.7 if kinds[metric] in _LOWER_QUANTILE_KINDS else 0.3
        return 0.7

    def aggregates(self) -> dict[str, dict[str, float]]:
        """Mean, population std and the "30" quantile over case means (official rules for official metrics;
        regbench's metrics ignore failed and NaN cases)."""
        official = {m.name for m in self.config.methods}
        result = {}
        for metric in self.metric_names:
            means = np.array([s.mean(metric) for s in self.scores if metric in s.detailed])
            if metric not in official:
                means = means[np.isfinite(means)]
            if means.size == 0:
                result[metric] = {"mean": float("nan"), "std": float("nan"), "30": float("nan")}
                continue
            result[metric] = {"mean": float(means.mean()), "std": float(means.std()),
                              "30": float(np.quantile(means, self._quantile(metric)))}
        return result

    def to_json(self) -> dict[str, Any]:
        cases = {s.pair.key: {metric: {"mean": s.mean(metric), "detailed": value}
                              for metric, value in s.detailed.items()} for s in self.scores}
        return {"name": self.config.task_name, "aggregates": self.aggregates(), "cases": cases,
                "eval_version": EVAL_VERSION, "failed": self.failures, "unexpected_files": self.unexpected_files}

    def rows(self) -> pd.DataFrame:
        """The long table of ``metrics.csv``: pair, label (int, or None for per-case metrics), metric, value."""
        records: list[tuple[str, int | None, str, float]] = []
        for scores in self.scores:
            key = scores.pair.key
            for metric, value in scores.detailed.items():
                if isinstance(value, list):
                    labels = self._labels_of(metric, len(value))
                    records += [(key, label, metric, float(v)) for label, v in zip(labels, value)]
                else:
                    records.append((key, None, metric, float(value)))
            records.append((key, None, FAILED, float(scores.error is not None)))
        frame = pd.DataFrame.from_records(records, columns=["pair", "label", "metric", "value"])
        frame["label"] = frame["label"].astype("Int64")
        return frame

    def _labels_of(self, metric: str, count: int) -> Sequence[int]:
        for method in self.config.methods:
            if method.labels and metric in (method.name, method.name + MM_SUFFIX, method.name + SAMPLE_STD_SUFFIX):
                return method.labels
        return range(count)

    def with_runtimes(self, runtimes: Mapping[PairId, float]) -> Evaluation:
        """A copy with ``Runtime_s`` per case; pairs without a finite runtime, or whose field failed, get the
        missing-case runtime."""
        missing = missing_value("runtime", self._kind)
        scores = []
        for s in self.scores:
            runtime = float(runtimes.get(s.pair, np.nan))
            ok = s.error is None and np.isfinite(runtime)
            scores.append(PairScores(s.pair, {**s.detailed, RUNTIME: runtime if ok else missing}, s.error))
        return Evaluation(self.config, scores, self.unexpected_files)


def _unexpected_files(disp_dir: Path, used: set[Path]) -> list[str]:
    """``disp_*`` files in the folder that belong to no evaluated pair (reported, never scored)."""
    return sorted(p.name for p in disp_dir.iterdir() if _DISP_NAME.match(p.name) and p not in used)


def evaluate_folder(task: Task, disp_dir: str | Path, *, split: Split = "val", config: EvalConfig | None = None,
                    runtimes: Mapping[PairId, float] | None = None) -> Evaluation:
    """Score every pair of ``config`` (default: the task's own for ``split``) from the fields in ``disp_dir``.

    Files are found by the official names (``disp_FFFF_MMMM_FFFF_MMMM`` or, for 0000 -> 0001 pairs,
    ``disp_FFFF_FFFF``; ``.npz`` or ``.nii.gz``). A missing or invalid field fails its pair only.

    Raises:
        DatasetError: ``disp_dir`` is not a folder, or a dataset file the metrics need is broken.
    """
    disp_dir = Path(disp_dir)
    if not disp_dir.is_dir():
        raise DatasetError(disp_dir, "displacement folder not found")
    config = config or config_for_task(task, split)
    scores, used = [], set()
    for pair in config.pair_ids:
        path = io.find_disp(disp_dir, pair)
        if path is None:
            names = " or ".join(f"{s}.npz/.nii.gz" for s in (pair.disp_stem, pair.short_disp_stem) if s)
            scores.append(failed_pair(task, pair, config, f"{disp_dir}: missing {names}"))
            continue
        used.add(path)
        npz = path.name.endswith(".npz")
        try:  # NIfTI as stored (no float64 copy); TRE then samples in the official precision of each format
            disp = io.read_disp(path, spatial_shape=config.spatial_shape, as_stored=True, uncertainty=True)
        except DatasetError as err:
            scores.append(failed_pair(task, pair, config, str(err)))
            continue
        scores.append(evaluate_pair(task, pair, disp, config, spline_dtype=np.float32 if npz else np.float64))
    evaluation = Evaluation(config, scores, _unexpected_files(disp_dir, used))
    return evaluation.with_runtimes(runtimes) if runtimes is not None else evaluation


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> None:
    """Write ``metrics.csv`` (NaN as ``NaN``, infinity as ``inf``; empty label for per-case metrics) and
    ``evaluation.json`` (NaN and Infinity literals, as the official json.dump writes them)."""
    out_dir = Path(out_dir)
    with io.atomic_path(out_dir / "metrics.csv") as tmp:
        rows = evaluation.rows()
        rows["label"] = rows["label"].astype("string").fillna("")
        rows.to_csv(tmp, index=False, na_rep="NaN")
    with io.atomic_path(out_dir / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(evaluation.to_json(), indent=4, allow_nan=True) + "\n")
