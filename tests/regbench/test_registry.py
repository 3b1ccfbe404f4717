"""The registry: methods found by file stem, configured by scale and overrides, bad names refused."""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path

import pytest
import yaml

from regbench import methods
from regbench.errors import RegbenchError
from regbench.method import Method
from regbench.registry import check_overrides, config_overrides, get_method, list_methods, method_class
from regbench.tasks.spec import list_tasks

ROOT = Path(__file__).parents[2]


def test_every_method_file_is_listed_and_nothing_else():
    names = list_methods()
    assert {"identity", "affine", "iterative"} <= set(names)
    assert "components" not in names and not any(name.startswith("_") for name in names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", list_methods())
def test_each_method_class_is_named_after_its_file(name):
    cls = method_class(name)
    assert issubclass(cls, Method) and cls.name == name
    assert cls.capabilities.dims <= {2, 3} and cls.resources.threads >= 1


def test_get_method_applies_scale_and_overrides():
    method = get_method("affine", scale="paper", seed=4, threads=1, lr=0.05)
    assert method.params.lr == 0.05 and method.params.factors == (4, 2, 1)
    assert method.seed == 4 and method.threads == 1


def test_unknown_names_are_one_line_errors():
    with pytest.raises(RegbenchError, match="unknown method 'afine'; registered methods: affine,"):
        get_method("afine")
    with pytest.raises(RegbenchError, match="AffineParams: unknown hyperparameter\\(s\\) iters"):
        get_method("affine", iters=3)


def test_a_method_file_must_define_one_method_named_after_it(monkeypatch):
    module = types.ModuleType(f"{methods.__name__}.stray")

    class Misnamed(Method):
        name = "other"

        def estimate(self, pair):
            raise AssertionError

    Misnamed.__module__ = module.__name__
    module.Misnamed = Misnamed
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr("regbench.registry.list_methods", lambda: ["stray"])
    with pytest.raises(RegbenchError, match="Misnamed.name must be the file stem 'stray', got 'other'"):
        method_class("stray")
    del module.Misnamed
    with pytest.raises(RegbenchError, match="defines exactly one Method subclass, found 0"):
        method_class("stray")


def test_config_overrides_apply_the_task_entry_after_the_method_entry():
    config = {"overrides": {"iterative": {"diffusion": 1.0, "window": 7}},
              "task_overrides": {"cardiac_mr": {"iterative": {"window": 3}}, "empty": None}}
    assert config_overrides(config, "cardiac_mr", "iterative") == {"diffusion": 1.0, "window": 3}
    assert config_overrides(config, "brain_mr", "iterative") == {"diffusion": 1.0, "window": 7}
    assert config_overrides(config, "empty", "affine") == {}
    assert config_overrides({"overrides": {}, "task_overrides": {}}, "brain_mr", "affine") == {}


def test_scale_overrides_apply_last_and_only_at_their_scale():
    config = {"overrides": {"iterative": {"diffusion": 1.0}}, "task_overrides": {"brain_mr": {"iterative": {"window": 3}}},
              "scale_overrides": {"default": {"brain_mr": {"iterative": {"window": 5, "iterations": [9]}}}}}
    assert config_overrides({**config, "scale": "default"}, "brain_mr", "iterative") == {
        "diffusion": 1.0, "window": 5, "iterations": [9]}
    assert config_overrides({**config, "scale": "smoke"}, "brain_mr", "iterative") == {"diffusion": 1.0, "window": 3}
    assert config_overrides(config, "cardiac_mr", "iterative") == {"diffusion": 1.0}  # no scale: the default


TASKS = ["brain_mr", "cardiac_mr"]


@pytest.mark.parametrize(("config", "message"), [
    ({"overrides": {"iterativ": {"diffusion": 0.2}}},
     "overrides: iterativ: unknown method 'iterativ'; registered methods: affine,"),
    ({"task_overrides": {"cardiac_rm": {"affine": {"lr": 0.1}}}},
     "task_overrides: unknown task(s) cardiac_rm; known tasks: brain_mr, cardiac_mr"),
    ({"overrides": {"iterative": {"lambda_diffusion": 2.0}}},
     "overrides: iterative: IterativeParams: unknown hyperparameter(s) lambda_diffusion; known: factors,"),
    ({"task_overrides": {"cardiac_mr": {"affine": {"lr": "fast"}}}},
     "task_overrides: cardiac_mr: affine: AffineParams: hyperparameter lr must be like"),
    ({"task_overrides": {"cardiac_mr": {"iterative": {"affine": {"similarity": 3}}}}},
     "task_overrides: cardiac_mr: iterative: AffineParams: hyperparameter similarity must be like"),
    ({"scale_overrides": {"default": {"brain_rm": {"affine": {"lr": 0.1}}}}},
     "scale_overrides: default: unknown task(s) brain_rm; known tasks: brain_mr, cardiac_mr"),
    # checked at the scale the entry names, whatever the run's: csain's default preset has two levels
    ({"scale_overrides": {"default": {"brain_mr": {"csain": {"iterations": [300]}}}}},
     "scale_overrides: default: brain_mr: csain: CSAINParams: "),
])
def test_check_overrides_names_the_mistake(config, message):
    with pytest.raises(RegbenchError) as err:
        check_overrides({"scale": "smoke", **config}, TASKS)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_check_overrides_accepts_the_shipped_config_and_its_commented_example():
    text = (ROOT / "config" / "config.yaml").read_text()
    config = yaml.safe_load(text)
    check_overrides(config, list_tasks())
    below = text.split("\noverrides: {}\n", 1)[1].splitlines()
    example = itertools.takewhile(lambda line: line.startswith("#  "), below)  # indented: YAML, not prose
    config["overrides"] = yaml.safe_load("\n".join(line.removeprefix("#") for line in example))
    assert all(config["overrides"].values())
    check_overrides(config, list_tasks())
