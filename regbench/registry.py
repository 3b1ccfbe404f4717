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
    entry, updated by the ``task_overrides`` entry of the task (None: none), then by the ``scale_overrides`` entry
    of the config's scale and the task, so benchmarks run methods as the workflow does."""
    scale_entries = (config.get("scale_overrides") or {}).get(config.get("scale", "default")) or {}
    merged = dict((config.get("overrides") or {}).get(method) or {})
    for by_task in (config.get("task_overrides") or {}, scale_entries):
        merged.update((by_task.get(task) or {}).get(method) or {})
    return merged


def check_overrides(config: Mapping[str, Any], task_names: Iterable[str]) -> None:
    """Check a workflow config's ``overrides``, ``task_overrides`` and ``scale_overrides`` when the workflow is
    planned, so a typo fails ``snakemake -n`` in one line instead of a job an hour later or, for a task name, never.

    Every method must be registered and every task one of ``task_names``; the settings each entry gives (merged as
    ``config_overrides`` merges them) must be parameters of the method, of the right type, at the entry's scale
    (the config's, or the one a ``scale_overrides`` entry names): ``Hyperparams.replace`` decides, as it does when
    the job runs.
    """
    known = sorted(set(task_names))
    scale = config.get("scale", "default")
    by_scale = {name: entries or {} for name, entries in (config.get("scale_overrides") or {}).items()}
    entries = [("overrides", scale, None, method) for method in config.get("overrides") or {}]
    for where, by_task, at_scale in [("task_overrides", config.get("task_overrides") or {}, scale),
                                     *((f"scale_overrides: {name}", tasks, name) for name, tasks in by_scale.items())]:
        unknown = sorted(set(by_task) - set(known))
        if unknown:
            raise RegbenchError(f"{where}: unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(known)}")
        entries += [(f"{where}: {task}", at_scale, task, method) for task, methods in by_task.items()
                    for method in methods or {}]
    for where, at_scale, task, method in entries:
        try:
            method_class(method).Params.preset(at_scale).replace(
                **config_overrides({**config, "scale": at_scale}, task, method))
        except RegbenchError as err:
            raise RegbenchError(f"{where}: {method}: {err}") from err
