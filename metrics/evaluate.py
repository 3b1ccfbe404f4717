"""Scoring Learn2Reg displacement fields: one pair (``evaluate_pair``), a folder (``evaluate_folder``), and
the two result files (``write_evaluation``).

What is scored comes from an evaluation config (``metrics.eval_config``: the official json, LUMIR's, or the
one a task's files imply). Official metrics keep their official names and values (``DSC``, ``HD95``,
``LogJacDetStd``, ``TRE_kp``/``TRE_lm``, LUMIR's ``ndv`` under the name its config gives); regbench adds
``NDV`` (LUMIR's non-diffeomorphic volume, ``metrics.ndv``, percent of the fixed image's foreground) for
every pair, ``HD95_mm`` beside every HD95 (fixed spacing), ``FoldingFraction`` beside SDlogJ,
``DispError_mm``/``DispError95_mm`` where the task has ground truth, ``Runtime_s`` where the caller measured
it, and for fields that come with uncertainty (``metrics.uncertainty``) its calibration against the ground
truth and ``DSC_SampleStd`` beside DSC when they come with samples.

TRE reads each pair's points from Learn2Reg keypoint CSVs or, where there are none, from LUMIR's landmark
label maps (``metrics.landmarks``); the folder is ``eval_config.keypoint_folder``'s.

Result files, in ``OUT_DIR``:

- ``evaluation.json``: the official layout - ``{"name", "aggregates": {metric: {"mean", "std", "30"}},
  "cases": {"FFFF_MMMM<--FFFF_MMMM": {metric: {"mean", "detailed"}}}, "eval_version": "2.0"}`` - plus
  ``"failed": {case: reason}``, ``"unexpected_files"``, ``"not_scored": {metric: reason}`` (metrics the
  config asks for that no pair could be scored with, e.g. DSC on a test split whose labels are not
  published) and ``"not_scored_cases": {case: {metric: reason}}`` (the same for metrics that only some
  pairs lack). ``"30"`` is the official 0.7 quantile of the case means for SDlogJ and TRE and 0.3 for the
  rest (HD95 included, as the official code does); for NDV and regbench's metrics, all lower-is-better, it
  is the 0.7 quantile, ignoring failed cases.
- ``metrics.csv``: columns ``pair, label, metric, value``, one row per detailed value: ``label`` is the label
  for DSC/HD95/HD95_mm, the keypoint's row in its CSV (from 0) or the landmark's label for TRE, and empty
  for per-case metrics; a ``Failed`` row (1 or 0) says whether the pair's field was missing or invalid. A
  metric that was not scored has no rows (its reason is in evaluation.json).

A missing or invalid field (absent, unreadable, wrong shape or channel count, NaN/inf) fails its pair only:
the reason is recorded by name and the pair scores as ``metrics.substitutes`` scores a missing case. A
companion file that is absent (labels, keypoints, landmarks) makes its metrics not scored for that pair;
one that is present but broken is an error.

Files are found and read as the official code finds and reads them (``regbench.io.find_disp``/``read_disp``;
images and companions from the config's paths), except that a NIfTI field stays in its stored precision in
memory: every metric converts to float64 slab by slab, and TRE samples in float64 as the official
``get_fdata`` does, so the numbers are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from regbench.metrics.eval_config import (
    EvalConfig, EvalMethod, companion_file, config_for_task, keypoint_folder, point_file,
)
from regbench.metrics.hd95 import hd95_per_label
from regbench.metrics.jacobian import plausibility
from regbench.metrics.landmarks import landmark_labels, landmark_tre_mm
from regbench.metrics.ndv import ndv_percent
from regbench.metrics.substitutes import RUNTIME, TaskKind, missing_value, task_kind
from regbench.metrics.tre import tre_mm
from regbench.metrics.uncertainty import calibration, dice_spread, std_of
from regbench.metrics.warp import warp_labels_nearest
from regbench.pair import PairId

EVAL_VERSION = "2.0"
FOLDING = "FoldingFraction"
NDV = "NDV"
DISP_ERROR = "DispError_mm"
DISP_ERROR_95 = "DispError95_mm"
COVERAGE = "Coverage{}sd"
CALIBRATION_ERROR = "CalibrationError"
STD_ERROR_SPEARMAN = "StdErrorSpearman"
SAMPLE_STD_SUFFIX = "_SampleStd"
FAILED = "Failed"
MM_SUFFIX = "_mm"
_LOWER_QUANTILE_KINDS = ("sdlogj", "tre", "ndv")
_SUBSTITUTED_KINDS = ("sdlogj", "dice", "hd95", "tre")  # official kinds that ``metrics.substitutes`` covers
_DISP_NAME = re.compile(r"^disp_[0-9_]+\.(nii\.gz|npz)$")

Detailed = float | list[float]


@dataclass(frozen=True)
class PairScores:
    """Every metric of one pair: ``detailed`` maps a metric name to its per-label or per-point list, or to a
    single number for per-case metrics. ``error`` says why the field failed (then the values are the
    missing-case substitutes, and regbench's own metrics are NaN). ``points`` names the points of each
    per-point metric (TRE: CSV rows or landmark labels); ``not_scored`` maps the metrics this pair could not
    be scored with to the reason (a companion file the dataset does not ship)."""

    pair: PairId
    detailed: dict[str, Detailed]
    error: str | None = None
    points: dict[str, list[int]] = field(default_factory=dict)
    not_scored: dict[str, str] = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        """The official case value: nan-mean over labels (DSC, HD95), mean over points (TRE; NaN if a
        landmark was lost, as in LUMIR's code), or the value."""
        value = self.detailed[metric]
        if not isinstance(value, list):
            return float(value)
        values = np.asarray(value, dtype=np.float64)
        return float(values.mean()) if metric in self.points else case_mean(values)


@dataclass(frozen=True)
class _PairData:
    """What scoring a pair reads from the dataset besides points: label maps (None when no metric needs them
    or, with ``labels_absent`` saying why, when the dataset does not ship them), the fixed mask, the fixed
    image's foreground (NDV's mask) and the spacings."""

    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    labels_absent: str | None
    fixed_mask: np.ndarray | None
    foreground: np.ndarray
    fixed_spacing: tuple[float, ...]
    moving_spacing: tuple[float, ...]


@dataclass(frozen=True)
class _Points:
    """A pair's corresponding points: (N, ndim) keypoint rows from CSV files, or LUMIR's landmark label maps."""

    fixed: np.ndarray
    moving: np.ndarray
    maps: bool

    @property
    def names(self) -> list[int]:
        """Each point's name in the tables: its CSV row, or its landmark label."""
        return landmark_labels(self.fixed).tolist() if self.maps else list(range(len(self.fixed)))


def _absent(*paths: Path) -> str | None:
    """Why a metric cannot be scored: the first of ``paths`` that is not a file; None if all are."""
    for path in paths:
        if not path.is_file():
            return str(DatasetError(path, "file not found"))
    return None


def _read_map(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A label map, mask or landmark map on the expected grid."""
    data = io.read_labels(path, ndim=len(shape)).data
    if data.shape != shape:
        raise DatasetError(path, f"shape {data.shape} does not match the expected {shape}")
    return data


def _label_paths(task: Task, images: tuple[str, str]) -> tuple[Path, Path]:
    return companion_file(task, images[0], "labels"), companion_file(task, images[1], "labels")


def _load_pair_data(task: Task, pair: PairId, config: EvalConfig) -> _PairData:
    """Read only what the metrics need: moving labels for Dice/HD95, fixed labels for those or as the body
    of the displacement error, the fixed mask if any, the fixed image for NDV, spacings from the headers."""
    shape, ndim = config.spatial_shape, len(config.spatial_shape)
    images = config.images(pair)
    paths = _label_paths(task, images)
    with_labels = any(m.metric in ("dice", "hd95") for m in config.methods)
    absent = _absent(*paths) if with_labels else None
    scored = with_labels and absent is None
    body = task.groundtruth_path(pair).is_file() and paths[0].is_file()
    mask_path = companion_file(task, images[0], "masks")
    fixed_path = task.resolve(images[0])
    fixed_image = io.read_image(fixed_path, ndim=ndim).data
    if fixed_image.shape != shape:
        raise DatasetError(fixed_path, f"shape {fixed_image.shape} does not match the expected {shape}")
    return _PairData(
        fixed_labels=_read_map(paths[0], shape) if scored or body else None,
        moving_labels=_read_map(paths[1], shape) if scored else None,
        labels_absent=absent,
        fixed_mask=_read_map(mask_path, shape) if mask_path.is_file() else None,
        foreground=fixed_image > 0,
        fixed_spacing=io.read_spacing(fixed_path, ndim=ndim),
        moving_spacing=io.read_spacing(task.resolve(images[1]), ndim=ndim),
    )


def _read_points(task: Task, images: tuple[str, str], pair: PairId, dest: str,
                 shape: tuple[int, ...]) -> _Points | str:
    """The pair's points for a TRE method, or why there are none (a file the dataset does not ship)."""
    folder = keypoint_folder(dest, pair)
    fixed_path = point_file(task, images[0], folder)
    if fixed_path is None:
        return str(DatasetError(companion_file(task, images[0], folder, points=True),
                                "file not found (nor a .nii.gz landmark map)"))
    maps = fixed_path.name.endswith(".nii.gz")
    moving_path = companion_file(task, images[1], folder, points=not maps)
    absent = _absent(moving_path)
    if absent is not None:
        return absent
    if maps:
        fixed = _read_map(fixed_path, shape)
        if not fixed.any():
            raise DatasetError(fixed_path, "landmark map holds no landmark (no nonzero label)")
        return _Points(fixed, _read_map(moving_path, shape), maps=True)
    fixed, moving = (io.read_keypoints(path, ndim=len(shape)) for path in (fixed_path, moving_path))
    if len(fixed) != len(moving):
        raise DatasetError(moving_path, f"{len(moving)} points, but the fixed case {pair.fixed} has {len(fixed)}")
    return _Points(fixed, moving, maps=False)


def _tre(points: _Points, disp: np.ndarray, data: _PairData, dtype: DTypeLike | None) -> tuple[list[float], list[int]]:
    """TRE of every point in mm, and the points' names."""
    if points.maps:
        labels, errors = landmark_tre_mm(points.fixed, warp_labels_nearest(points.moving, disp), data.fixed_spacing)
        return errors.tolist(), labels.tolist()
    return tre_mm(points.fixed, points.moving, disp, data.moving_spacing, dtype=dtype).tolist(), points.names


def _not_scored(method: EvalMethod, reason: str) -> dict[str, str]:
    """The not-scored entries of a method: its own, and HD95_mm beside an HD95."""
    names = [method.name] + ([method.name + MM_SUFFIX] if method.metric == "hd95" else [])
    return dict.fromkeys(names, reason)


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
        pair: which pair ``disp`` registers (one of ``config``'s).
        disp: (*fixed_spatial, ndim) field in voxels, Learn2Reg layout (already checked for shape and
            finiteness; ``evaluate_folder`` does that for files), with its std and samples if it has any.
        config: what to score.
        spline_dtype: the precision TRE samples the field in; None: the field's own. The official code
            samples a NIfTI field in float64 and an ``.npz`` one in float32; ``evaluate_folder`` matches it.

    Raises:
        DatasetError: a dataset file the metrics need is malformed, or an image is missing.
    """
    field_data = disp.data if isinstance(disp, Displacement) else np.asarray(disp)
    images = config.images(pair)
    data = _load_pair_data(task, pair, config)
    sdlogj_mask = data.fixed_mask if config.masked else None  # no mask file: unmasked, as the official code
    ndv = ndv_percent(field_data, data.foreground)
    detailed: dict[str, Detailed] = {}
    points: dict[str, list[int]] = {}
    not_scored: dict[str, str] = {}
    warped = None
    for method in config.methods:
        if method.metric in ("dice", "hd95"):
            if data.labels_absent is not None:
                not_scored.update(_not_scored(method, data.labels_absent))
                continue
            if warped is None:
                warped = warp_labels_nearest(data.moving_labels, field_data)
        if method.metric == "sdlogj":
            jacobian = plausibility(field_data, sdlogj_mask)
            detailed[method.name], detailed[FOLDING] = jacobian.sdlogj, jacobian.folding_fraction
        elif method.metric == "ndv":
            detailed[method.name] = ndv
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
            source = _read_points(task, images, pair, method.dest, config.spatial_shape)
            if isinstance(source, str):
                not_scored[method.name] = source
            else:
                detailed[method.name], points[method.name] = _tre(source, field_data, data, spline_dtype)
    detailed[NDV] = ndv
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
    return PairScores(pair, detailed, points=points, not_scored=not_scored)


def failed_pair(task: Task, pair: PairId, config: EvalConfig, reason: str) -> PairScores:
    """The scores of a pair whose field is missing or invalid: official metrics get the missing-case
    substitutes (``metrics.substitutes``), NDV and regbench's own metrics NaN; metrics whose files the
    dataset lacks for this pair are not scored, as for a valid field."""
    kind = task_kind({m.metric for m in config.methods})
    images = config.images(pair)
    nan = float("nan")
    detailed: dict[str, Detailed] = {}
    points: dict[str, list[int]] = {}
    not_scored: dict[str, str] = {}
    labels_absent = _absent(*_label_paths(task, images))
    for method in config.methods:
        if method.metric == "sdlogj":
            detailed[method.name] = missing_value("sdlogj", kind)
            detailed[FOLDING] = nan
        elif method.metric == "ndv":
            detailed[method.name] = nan
        elif method.metric in ("dice", "hd95") and labels_absent is not None:
            not_scored.update(_not_scored(method, labels_absent))
        elif method.metric in ("dice", "hd95"):
            detailed[method.name] = [missing_value(method.metric, kind)] * len(method.labels)
            if method.metric == "hd95":
                detailed[method.name + MM_SUFFIX] = [nan] * len(method.labels)
        elif method.metric == "tre":
            source = _read_points(task, images, pair, method.dest, config.spatial_shape)
            if isinstance(source, str):
                not_scored[method.name] = source
            else:
                points[method.name] = source.names
                detailed[method.name] = [missing_value("tre", kind)] * len(points[method.name])
    detailed[NDV] = nan
    if task.groundtruth_path(pair).is_file():
        detailed[DISP_ERROR] = detailed[DISP_ERROR_95] = nan
    return PairScores(pair, detailed, reason, points, not_scored)


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
        """Every metric some pair has, official ones first in config order, then regbench's."""
        present = dict.fromkeys(metric for scores in self.scores for metric in scores.detailed)
        return [m for m in dict.fromkeys([*(m.name for m in self.config.methods), *present]) if m in present]

    @property
    def not_scored(self) -> dict[str, str]:
        """Metrics of the config that no pair could be scored with, and why (the first pair's reason)."""
        result = {}
        for metric, reasons in self._not_scored_reasons().items():
            if len(reasons) == len(self.scores):
                first = next(iter(reasons.values()))
                result[metric] = first if len(reasons) == 1 else f"{first} (and for all {len(reasons)} pairs)"
        return result

    @property
    def not_scored_cases(self) -> dict[str, dict[str, str]]:
        """For metrics that only some pairs could not be scored with: case -> metric -> reason."""
        result: dict[str, dict[str, str]] = {}
        for metric, reasons in self._not_scored_reasons().items():
            if len(reasons) < len(self.scores):
                for key, reason in reasons.items():
                    result.setdefault(key, {})[metric] = reason
        return result

    def not_scored_messages(self) -> list[str]:
        """One line per metric not scored (``not scored DSC: ...``), then per case (``... for CASE: ...``)."""
        lines = [f"not scored {metric}: {reason}" for metric, reason in self.not_scored.items()]
        return lines + [f"not scored {metric} for {key}: {reason}"
                        for key, reasons in self.not_scored_cases.items() for metric, reason in reasons.items()]

    def _not_scored_reasons(self) -> dict[str, dict[str, str]]:
        """metric -> case -> reason, metrics in order of first appearance."""
        reasons: dict[str, dict[str, str]] = {}
        for scores in self.scores:
            for metric, reason in scores.not_scored.items():
                reasons.setdefault(metric, {})[scores.pair.key] = reason
        return reasons

    def _quantile(self, metric: str) -> float:
        kinds = {m.name: m.metric for m in self.config.methods}
        if metric in kinds:
            return 0.7 if kinds[metric] in _LOWER_QUANTILE_KINDS else 0.3
        return 0.7

    def aggregates(self) -> dict[str, dict[str, float]]:
        """Mean, population std and the "30" quantile over case means (official rules for the official metrics
        that have missing-case substitutes; NDV and regbench's metrics ignore failed and NaN cases)."""
        substituted = {m.name for m in self.config.methods if m.metric in _SUBSTITUTED_KINDS}
        result = {}
        for metric in self.metric_names:
            means = np.array([s.mean(metric) for s in self.scores if metric in s.detailed])
            if metric not in substituted:
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
                "eval_version": EVAL_VERSION, "failed": self.failures, "unexpected_files": self.unexpected_files,
                "not_scored": self.not_scored, "not_scored_cases": self.not_scored_cases}

    def rows(self) -> pd.DataFrame:
        """The long table of ``metrics.csv``: pair, label (int, or None for per-case metrics), metric, value."""
        records: list[tuple[str, int | None, str, float]] = []
        for scores in self.scores:
            key = scores.pair.key
            for metric, value in scores.detailed.items():
                if isinstance(value, list):
                    labels = scores.points[metric] if metric in scores.points else self._labels_of(metric, len(value))
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
            scores.append(replace(s, detailed={**s.detailed, RUNTIME: runtime if ok else missing}))
        return Evaluation(self.config, scores, self.unexpected_files)


def _unexpected_files(disp_dir: Path, used: set[Path]) -> list[str]:
    """``disp_*`` files in the folder that belong to no evaluated pair (reported, never scored)."""
    return sorted(p.name for p in disp_dir.iterdir() if _DISP_NAME.match(p.name) and p not in used)


def _disp_folder(disp_dir: str | Path) -> Path:
    disp_dir = Path(disp_dir)
    if not disp_dir.is_dir():
        raise DatasetError(disp_dir, "displacement folder not found")
    return disp_dir


def fields_held(task: Task, disp_dir: str | Path) -> dict[Split, int]:
    """How many pairs of each split have a field in ``disp_dir``, found as ``evaluate_folder`` finds them: which
    split a folder of fields is for, when its owner did not say."""
    disp_dir = _disp_folder(disp_dir)
    return {split: sum(io.find_disp(disp_dir, pair) is not None for pair in task.pair_ids(split))
            for split in ("val", "test")}


def evaluate_folder(task: Task, disp_dir: str | Path, *, split: Split = "val", config: EvalConfig | None = None,
                    runtimes: Mapping[PairId, float] | None = None) -> Evaluation:
    """Score every pair of ``config`` (default: the task's own for ``split``) from the fields in ``disp_dir``.

    Files are found by the official names (``disp_FFFF_MMMM_FFFF_MMMM`` or, for 0000 -> 0001 pairs,
    ``disp_FFFF_FFFF``; ``.npz`` or ``.nii.gz``), or LUMIR's short name (``regbench.io.disp_stems``). A
    missing or invalid field fails its pair only.

    Raises:
        DatasetError: ``disp_dir`` is not a folder, or a dataset file the metrics need is broken.
    """
    disp_dir = _disp_folder(disp_dir)
    config = config or config_for_task(task, split)
    scores, used = [], set()
    for pair in config.pair_ids:
        path = io.find_disp(disp_dir, pair)
        if path is None:
            stems = dict.fromkeys([pair.disp_stem, *io.disp_stems(pair)])  # the long name first
            names = " or ".join(f"{s}.npz/.nii.gz" for s in stems)
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
