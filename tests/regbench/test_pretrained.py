"""Shipped models: used only when made exactly as the train job would make them; every shipped one loads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from regbench import pretrained
from regbench.errors import RegbenchError
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
    assert pretrained.dataset_digest(tmp_path) not in (digest, changed)


def _ship(record: dict, tmp_path: Path, source: str = pretrained.TRAINED) -> Path:
    """A run's model, curve and provenance for ``record``, exported to a shipping folder (returned)."""
    run = tmp_path / "run"
    (run / "model.pt").parent.mkdir(parents=True, exist_ok=True)
    (run / "model.pt").write_bytes(b"state")
    pd.DataFrame({"step": [50], "dice": [0.8], "best": [True]}).to_csv(run / "curve.csv", index=False)
    pretrained.write_provenance(run / "source.json", source, "--config train=scratch", record)
    shipped = tmp_path / "shipped"
    pretrained.export(run / "source.json", run / "model.pt", run / "curve.csv", shipped, MADE)
    return shipped


def test_a_shipped_model_is_used_only_when_made_as_the_job_would_make_it(generated_task, tmp_path):
    task = generated_task("cardiac_mr", "smoke")
    record = pretrained.training_record(get_method("voxelmorph", scale="smoke"), task, "smoke")
    shipped = _ship(record, tmp_path)
    assert sorted(p.name for p in (shipped / "cardiac_mr").iterdir()) == [
        "voxelmorph.json", "voxelmorph.pt", "voxelmorph_validation.csv"]
    out = tmp_path / "out"
    used, why = pretrained.use_shipped(record, out / "m.pt", out / "c.csv", shipped)
    assert used and (out / "m.pt").read_bytes() == b"state" and pd.read_csv(out / "c.csv")["dice"].tolist() == [0.8]
    assert why == f"loaded shipped/cardiac_mr/voxelmorph.pt, made 2026-12-07 at commit abc by {MADE['command']}"

    other = tmp_path / "other"
    longer = pretrained.training_record(get_method("voxelmorph", scale="smoke", iterations=31), task, "smoke")
    used, why = pretrained.use_shipped(longer, other / "m.pt", other / "c.csv", shipped)
    assert not used and not other.exists()
    assert why == "the shipped model was trained otherwise: params.iterations 30 shipped, 31 wanted"
    reseeded = pretrained.training_record(get_method("voxelmorph", scale="smoke", seed=1), task, "smoke")
    assert pretrained.use_shipped(reseeded, other / "m.pt", other / "c.csv", shipped)[1].endswith("seed 0 shipped, 1 wanted")
    elsewhere = {**record, "data": "0" * 64}
    assert "data '" in pretrained.use_shipped(elsewhere, other / "m.pt", other / "c.csv", shipped)[1]
    unshipped = {**record, "method": "vrnet"}
    assert pretrained.use_shipped(unshipped, other / "m.pt", other / "c.csv", shipped) == (
        False, "no model shipped for vrnet on cardiac_mr")


def test_only_a_model_the_run_trained_is_exported(tmp_path):
    with pytest.raises(RegbenchError, match="loaded from the package, not trained by this run"):
        _ship({"task": "t", "method": "m"}, tmp_path, source=pretrained.SHIPPED)


def _default_training_runs(config: dict) -> set[tuple[str, str]]:
    """(task, method) of every learning method the default config trains, as the workflow's supports() decides."""
    specs = task_specs(config["tasks"])
    runs = set()
    for task, spec in specs.items():
        for name in config["methods"]:
            cls = method_class(name)
            supported = spec.ndim in cls.capabilities.dims and (cls.capabilities.multimodal or not spec.multimodal)
            if cls.trainable and supported:
                runs.add((task, name))
    return runs


def test_every_default_model_is_shipped_loads_and_was_made_as_the_train_rule_would_make_it(generated_task):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    records = {path: json.loads(path.read_text()) for path in pretrained.SHIPPED_DIR.glob(f"*/*{pretrained.RECORD_SUFFIX}")}
    shipped = {(r["training"]["task"], r["training"]["method"]): r for r in records.values()}
    assert set(shipped) == _default_training_runs(config)
    for (task, name), record in shipped.items():
        training = record["training"]
        method = get_method(name, scale="default", seed=config["method_seed"],
                            **config_overrides({**config, "scale": "default"}, task, name))
        assert (training["scale"], training["seed"]) == ("default", config["method_seed"])
        assert training["params"] == pretrained.params_record(method.params), (task, name)
        model, _, curve = pretrained.shipped_paths(task, name)
        method.load(model)  # weights_only: tensors that fit the configured network
        assert list(pd.read_csv(curve).columns) == ["step", "dice", "best"]
        assert record["made"]["command"] == MADE["command"] and record["made"]["train_cpu_s"] > 0
    # the data: the train job's digest of the task it generates (the smallest task; the others are generated alike)
    cardiac = generated_task("cardiac_mr")
    assert shipped["cardiac_mr", "mad"]["training"]["data"] == pretrained.dataset_digest(cardiac.root)
