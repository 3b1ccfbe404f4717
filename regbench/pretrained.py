"""Shipped models: trained states the workflow's ``train`` job loads instead of training.

Converged training of the five learning methods on the five built-in tasks costs more than an hour on two CPU
cores, most of the default run; at the smoke scale, training is half the everyday run's time. The workflow's own
``train`` rule made each file under ``regbench/pretrained/<scale>/<task>/`` (``snakemake pretrained --config
train=scratch [scale=smoke]``, README "Pretrained models"), and each carries the
record of what was trained: the task and a digest of its data, the method, its seed and every hyperparameter
after the config's overrides. A ``train`` job loads a shipped model only when that record equals the record of
what it would train itself; any difference (other data, another seed, a changed setting or default) and it
trains, saying which entry differs. ``--config train=scratch`` always trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regbench import io
from regbench.dataset import Task
from regbench.errors import RegbenchError

if TYPE_CHECKING:  # the report reads provenance files without torch
    from regbench.method import Hyperparams, Method

SHIPPED_DIR = Path(__file__).parent / "pretrained"
MODEL_SUFFIX = ".pt"
RECORD_SUFFIX = ".json"
CURVE_SUFFIX = "_validation.csv"
VALIDATION_LOG = "validation.csv"  # the curve a training run writes to its workdir (``regbench.training``)
VALIDATION_COLUMNS = ["step", "dice", "tre_mm", "best"]  # its columns, as shipped and as the report reads them
SHIPPED, TRAINED = "shipped", "trained"  # a model's source in its provenance file


def dataset_digest(root: str | Path) -> str:
    """SHA-256 over every file of a Learn2Reg folder (relative paths and bytes, in sorted order): the generators
    write byte-identical files for the same seed, so equal digests mean the same training and validation data.
    Hidden files are not data (Snakemake leaves ``.snakemake_timestamp`` in the folders it makes)."""
    root = Path(root)
    digest = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def training_record(method: Method, task: Task, scale: str) -> dict[str, Any]:
    """What a ``train`` job trains: equal records, interchangeable models."""
    return {"task": task.name, "data": dataset_digest(task.root), "method": method.name, "scale": scale,
            "seed": method.seed, "params": params_record(method.params)}


def params_record(params: Hyperparams) -> dict[str, Any]:
    """Every hyperparameter, nested ones included, as a record file reads back (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(params)))


def record_differences(shipped: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The entries where a shipped record differs from the wanted one, as dotted names (``params.iterations``)."""
    found = []
    for key in sorted(set(shipped) | set(wanted)):
        name, a, b = f"{prefix}{key}", shipped.get(key), wanted.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += record_differences(a, b, f"{name}.")
        elif a != b:
            found.append(f"{name} {a!r} shipped, {b!r} wanted")
    return found


def shipped_paths(record: Mapping[str, Any], method: str, directory: Path = SHIPPED_DIR) -> tuple[Path, Path, Path]:
    """The model, record and validation curve shipped under ``directory`` for the scale and task of a training
    ``record`` and a leaderboard row ``method``."""
    folder = directory / record["scale"] / record["task"]
    return folder / f"{method}{MODEL_SUFFIX}", folder / f"{method}{RECORD_SUFFIX}", folder / f"{method}{CURVE_SUFFIX}"


def use_shipped(record: Mapping[str, Any], row: str, model_path: Path, curve_path: Path,
                directory: Path = SHIPPED_DIR) -> tuple[bool, str]:
    """Copy the model shipped for the leaderboard row ``row`` (a method, or a variant of one) if its record equals
    ``record``, and its validation curve, to the paths the ``train`` job writes; return whether it did and why
    (which model; no model shipped; which entries differ)."""
    model, record_path, curve = shipped_paths(record, row, directory)
    if not model.is_file() or not record_path.is_file():
        return False, f"no model shipped for {row} on {record['task']} at scale {record['scale']}"
    shipped = json.loads(record_path.read_text())
    differences = record_differences(shipped["training"], record)
    if differences:
        return False, "the shipped model was trained otherwise: " + "; ".join(differences)
    _copy({model: model_path, curve: curve_path})
    made = shipped["made"]
    return True, (f"loaded {model.relative_to(directory.parent)}, made {made['date']} at commit {made['commit']} by "
                  f"{made['command']}")


def write_provenance(path: Path, source: str, reason: str, record: Mapping[str, Any],
                     parameters: int | None = None) -> None:
    """The ``train`` job's account of its model: loaded (``SHIPPED``) or trained here (``TRAINED``), why, and its
    learnable parameters (where the method has a network; the claims table compares them)."""
    account = {"source": source, "reason": reason, "parameters": parameters, "training": dict(record)}
    with io.atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(account, indent=1))


def read_provenance(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def export(provenance: Path, row: str, model: Path, curve: Path, directory: Path, made: Mapping[str, Any]) -> None:
    """Write the model the run trained for the leaderboard row ``row``, its curve and its record (with ``made``:
    command, commit, date, cost) as ``directory/<scale>/<task>/<row>.*``, the layout ``use_shipped`` reads."""
    account = read_provenance(provenance)
    if account["source"] != TRAINED:
        raise RegbenchError(f"{model}: loaded from the package, not trained by this run; make the models to ship "
                            "with --config train=scratch")
    record = account["training"]
    model_target, record_target, curve_target = shipped_paths(record, row, directory)
    _copy({model: model_target, curve: curve_target})
    with io.atomic_path(record_target) as tmp:
        Path(tmp).write_text(json.dumps({"training": record, "made": dict(made)}, indent=1) + "\n")


def _copy(targets: Mapping[Path, Path]) -> None:
    """Copy each source file onto its target, each written atomically."""
    for source, target in targets.items():
        with io.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
