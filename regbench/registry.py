"""The method registry: every module in ``methods/`` (``regbench.methods``) is a method, keyed by file stem.

Adding a method is adding one file: ``methods/affine.py`` defines exactly one ``Method`` subclass whose
``name`` is ``"affine"``. Packages (``methods/components/``) and private modules (``_x.py``) are not methods.
Modules are imported only when asked for, so listing the names costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regbench import methods
from regbench.errors import RegbenchError

if TYPE_CHECKING:  # importing a method imports torch: only method_class does it, when asked
    import torch

    from regbench.method import Method


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(methods.__path__)
                  if not info.ispkg and not info.name.startswith("_"))


def method_class(name: str) -> type[Method]:
    """The ``Method`` subclass defined in ``methods/<name>.py``."""
    from regbench.method import Method

    available = list_methods()
    if name not in available:
        raise RegbenchError(f"unknown method {name!r}; registered methods: {', '.join(available) or 'none'}")
    module = importlib.import_module(f"{methods.__name__}.{name}")
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Method) and obj.__module__ == module.__name__
             and not inspect.isabstract(obj)]
    if len(found) != 1:
        raise RegbenchError(f"methods/{name}.py: a method file defines exactly one Method subclass, found "
                            f"{len(found)} ({', '.join(c.__name__ for c in found) or 'none'})")
    cls = found[0]
    if getattr(cls, "name", None) != name:
        raise RegbenchError(f"methods/{name}.py: {cls.__name__}.name must be the file stem {name!r}, "
                            f"got {getattr(cls, 'name', None)!r}")
    return cls


def get_method(name: str, *, scale: str = "default", seed: int = 0, threads: int | None = None,
               device: str | torch.device = "cpu", **overrides: Any) -> Method:
    """A ready method: ``method_class(name).configure(...)`` with the scale's preset and config overrides."""
    return method_class(name).configure(scale=scale, seed=seed, threads=threads, device=device, **overrides)


def loaded_method(name: str, model: str | Path | None, **configure: Any) -> Method:
    """``get_method(name, **configure)`` with the trained state at ``model`` loaded (None: a classic method,
    nothing to load): what the workflow's jobs that register run."""
    method = get_method(name, **configure)
    if model:
        method.load(model)
    return method


def config_overrides(config: Mapping[str, Any], task: str | None, method: str) -> dict[str, Any]:
    """The settings a workflow config (``config/config.yaml``) gives ``method`` on ``task``: its ``overrides``
    entry, updated by the ``task_overrides`` entry of the task (None: none), so benchmarks run methods as the
    workflow does."""
    merged = dict((config.get("overrides") or {}).get(method) or {})
    merged.update(((config.get("task_overrides") or {}).get(task) or {}).get(method) or {})
    return merged


def check_overrides(config: Mapping[str, Any], task_names: Iterable[str]) -> None:
    """Check a workflow config's ``overrides`` and ``task_overrides`` when the workflow is planned, so a typo fails
    ``snakemake -n`` in one line instead of a job an hour later or, for a task name, never.

    Every method must be registered and every task one of ``task_names``; the settings each entry gives (a task's
    merged onto the method-wide ones, as ``config_overrides`` merges them) must be parameters of the method, of
    the right type, at the config's scale: ``Hyperparams.replace`` decides, as it does when the job runs.
    """
    task_overrides = config.get("task_overrides") or {}
    known = sorted(set(task_names))
    unknown = sorted(set(task_overrides) - set(known))
    if unknown:
        raise RegbenchError(f"task_overrides: unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(known)}")
    entries = [("overrides", None, method) for method in config.get("overrides") or {}]
    entries += [(f"task_overrides: {task}", task, method) for task, methods in task_overrides.items()
                for method in methods or {}]
    for where, task, method in entries:
        try:
            method_class(method).Params.preset(config.get("scale", "default")).replace(
                **config_overrides(config, task, method))
        except RegbenchError as err:
            raise RegbenchError(f"{where}: {method}: {err}") from err
