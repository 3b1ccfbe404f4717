"""Shipped models: used only when made exactly as the train job would make them; every shipped one loads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from regbench import pretrained
from regbench.errors import RegbenchError
from regbench.pretrained import VALIDATION_COLUMNS
from regbench.registry import config_overrides, get_method, method_class
from regbench.tasks.spec import task_specs

ROOT = Path(__file__).resolve().parents[2]
MADE = {"command": "snakemake --cores 2 pretrained --config train=scratch", "commit": "abc", "date": "2026-12-07"}


def test_the_dataset_digest_changes_with_any_byte_or_name(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "imagesTr" / "a.nii.gz").write_bytes(b"\x00\x01")
    (tmp_path / "task.json").write_text("{}")
    digest = pretrained.dataset_digest(tmp_path)
    assert pretrained.dataset_digest(tmp_path) == digest
    (tmp_path / "imagesTr" / "a.nii.gz").write_bytes(b"\x00\x02")
    changed = pretrained.dataset_digest(tmp_path)
    assert changed != digest
    (tmp_path / "imagesTr" / "a.nii.gz").rename(tmp_path / "imagesTr" / "b.nii.gz")
    renamed = pretrained.dataset_digest(tmp_path)
    assert renamed not in (digest, changed)
    (tmp_path / ".snakemake_timestamp").touch()  # what Snakemake leaves in a folder it made: not data
    assert pretrained.dataset_digest(tmp_path) == renamed


def _ship(record: dict, tmp_path: Path, source: str = pretrained.TRAINED) -> Path:
    """A run's model, curve and provenance for ``record``, exported to a shipping folder (returned)."""
    run = tmp_path / "run"
    (run / "model.pt").parent.mkdir(parents=True, exist_ok=True)
    (run / "model.pt").write_bytes(b"state")
    pd.DataFrame({"step": [50], "dice": [0.8], "best": [True]}).to_csv(run / "curve.csv", index=False)
    pretrained.write_provenance(run / "source.json", source, "--config train=scratch", record)
    shipped = tmp_path / "shipped"
    pretrained.export(run / "source.json", "voxelmorph", run / "model.pt", run / "curve.csv", shipped, MADE)
    return shipped


def test_a_shipped_model_is_used_only_when_made_as_the_job_would_make_it(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    record = pretrained.training_record(get_method("voxelmorph", scale="smoke"), task, "smoke")
    shipped = _ship(record, tmp_path)
    assert sorted(p.name for p in (shipped / "smoke" / "cardiac_mr").iterdir()) == [
        "voxelmorph.json", "voxelmorph.pt", "voxelmorph_validation.csv"]
    out = tmp_path / "out"
    used, why = pretrained.use_shipped(record, "voxelmorph", out / "m.pt", out / "c.csv", shipped)
    assert used and (out / "m.pt").read_bytes() == b"state" and pd.read_csv(out / "c.csv")["dice"].tolist() == [0.8]
    assert why == f"loaded shipped/smoke/cardiac_mr/voxelmorph.pt, made 2026-12-07 at commit abc by {MADE['command']}"

    other = tmp_path / "other"
    longer = pretrained.training_record(get_method("voxelmorph", scale="smoke", iterations=31), task, "smoke")
    used, why = pretrained.use_shipped(longer, "voxelmorph", other / "m.pt", other / "c.csv", shipped)
    assert not used and not other.exists()
    assert why == "the shipped model was trained otherwise: params.iterations 30 shipped, 31 wanted"
    reseeded = pretrained.training_record(get_method("voxelmorph", scale="smoke", seed=1), task, "smoke")
    why = pretrained.use_shipped(reseeded, "voxelmorph", other / "m.pt", other / "c.csv", shipped)[1]
    assert why.endswith("seed 0 shipped, 1 wanted")
    elsewhere = {**record, "data": "0" * 64}
    assert "data '" in pretrained.use_shipped(elsewhere, "voxelmorph", other / "m.pt", other / "c.csv", shipped)[1]
    # a variant ships under its own name
    assert pretrained.use_shipped(record, "voxelmorph_adversarial", other / "m.pt", other / "c.csv", shipped) == (
        False, "no model shipped for voxelmorph_adversarial on cardiac_mr at scale smoke")


def test_only_a_model_the_run_trained_is_exported(tmp_path):
    with pytest.raises(RegbenchError, match="loaded from the package, not trained by this run"):
        _ship({"task": "t", "method": "m", "scale": "smoke"}, tmp_path, source=pretrained.SHIPPED)


def _trainings(config: dict, scale: str) -> dict[tuple[str, str], tuple[str, dict]]:
    """(task, row) -> (method, settings) of every learning method and variant the shipped config trains at
    ``scale``, as the workflow decides (``Capabilities.suits`` as its supports(), a variant's tasks, overrides
    then the variant's settings)."""
    rows = {name: (name, None, {}) for name in config["methods"]}
    rows.update({name: (v["method"], v.get("tasks"), v.get("settings") or {}) for name, v in config["variants"].items()
                 if v["method"] in config["methods"]})
    trainings = {}
    for task, spec in task_specs(config["tasks"]).items():
        for row, (name, tasks, settings) in rows.items():
            cls = method_class(name)
            supported = cls.capabilities.suits(spec.ndim, spec.multimodal)
            if cls.trainable and supported and (tasks is None or task in tasks):
                overrides = config_overrides({**config, "scale": scale}, task, name)
                trainings[task, row] = (name, {**overrides, **settings})
    return trainings


@pytest.mark.parametrize("scale", ["smoke", "default"])
def test_every_model_the_config_trains_is_shipped_loads_and_was_made_as_the_train_rule_would_make_it(
        generated_task, scale):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    trainings = _trainings(config, scale)
    shipped = {(path.parent.name, path.stem): json.loads(path.read_text())
               for path in (pretrained.SHIPPED_DIR / scale).glob(f"*/*{pretrained.RECORD_SUFFIX}")}
    assert set(shipped) == set(trainings)
    command = MADE["command"] + ("" if scale == "default" else f" scale={scale}")
    for (task, row), record in shipped.items():
        training = record["training"]
        name, settings = trainings[task, row]
        method = get_method(name, scale=scale, seed=config["method_seed"], **settings)
        assert (training["task"], training["method"], training["scale"], training["seed"]) == (
            task, name, scale, config["method_seed"])
        assert training["params"] == pretrained.params_record(method.params), (task, row)
        model, _, curve = pretrained.shipped_paths(training, row)
        method.load(model)  # weights_only: tensors that fit the configured network
        assert list(pd.read_csv(curve).columns) == VALIDATION_COLUMNS
        assert record["made"]["command"] == command and record["made"]["train_cpu_s"] > 0
    # the data: the train job's digest of the task it generates (the smallest task; the others are generated alike)
    cardiac = generated_task("cardiac_mr", scale)
    assert shipped["cardiac_mr", "mad"]["training"]["data"] == pretrained.dataset_digest(cardiac.root)
