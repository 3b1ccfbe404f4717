"""The registry: methods found by file stem, configured by scale and overrides, bad names refused."""

from __future__ import annotations

import sys
import types

import pytest

from regbench import methods
from regbench.errors import RegbenchError
from regbench.method import Method
from regbench.registry import config_overrides, get_method, list_methods, method_class


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
