"""What ``regbench methods`` shows of a method, read from its file's source without importing it.

Importing a method imports torch (a second or two), which a listing should not cost. A method declares its
``capabilities`` and ``resources`` as literal calls in its class body, and is trainable when it says so or
derives from ``NetworkMethod``; those declarations are read with ``ast``. A method whose declarations are not
literals (computed, inherited from another method) is imported instead, so the answer is always the class's own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regbench import methods
from regbench.capabilities import Capabilities, PaperCost, Resources

_TRAINABLE_BASES = {"NetworkMethod": True, "Method": False}


@dataclass(frozen=True)
class MethodSummary:
    """A method's declarations: what it can do, what its jobs need, and whether it learns."""

    name: str
    capabilities: Capabilities
    resources: Resources
    trainable: bool


class _NotLiteral(Exception):
    """A declaration that only importing the method can evaluate."""


def method_summary(name: str) -> MethodSummary:
    """The declarations of ``methods/<name>.py``: from its source where they are literals, else imported."""
    source = Path(methods.__path__[0]) / f"{name}.py"
    try:
        return _from_source(name, ast.parse(source.read_text()))
    except (_NotLiteral, OSError, SyntaxError):
        from regbench.registry import method_class

        cls = method_class(name)
        return MethodSummary(name, cls.capabilities, cls.resources, cls.trainable)


def _from_source(name: str, module: ast.Module) -> MethodSummary:
    classes = [node for node in module.body if isinstance(node, ast.ClassDef) and _assigned(node, "name") == name]
    if len(classes) != 1:
        raise _NotLiteral(name)
    body = classes[0]
    trainable = _assigned(body, "trainable")
    if trainable is None:
        bases = {base.id for base in body.bases if isinstance(base, ast.Name)}
        known = [_TRAINABLE_BASES[b] for b in bases if b in _TRAINABLE_BASES]
        if not known:
            raise _NotLiteral(name)
        trainable = any(known)
    return MethodSummary(name, Capabilities(**_call_keywords(body, "capabilities", "Capabilities")),
                         Resources(**_call_keywords(body, "resources", "Resources")), bool(trainable))


def _value_node(body: ast.ClassDef, target: str) -> ast.expr | None:
    for node in body.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == target:
            return node.value
    return None


def _assigned(body: ast.ClassDef, target: str) -> Any:
    """The literal value assigned to ``target`` in the class body, or None if there is none."""
    node = _value_node(body, target)
    return None if node is None else _literal(node)


def _call_keywords(body: ast.ClassDef, target: str, constructor: str) -> dict[str, Any]:
    node = _value_node(body, target)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == constructor
            and not node.args and all(k.arg for k in node.keywords)):
        raise _NotLiteral(target)
    return {k.arg: _literal(k.value) for k in node.keywords}


def _literal(node: ast.expr) -> Any:
    """A literal, ``frozenset`` of one (how ``Capabilities.dims`` is written) or a ``PaperCost`` of literals
    (``Resources.paper``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "frozenset" \
            and len(node.args) == 1 and not node.keywords:
        return frozenset(_literal(node.args[0]))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "PaperCost" \
            and not node.args and all(k.arg for k in node.keywords):
        return PaperCost(**{k.arg: _literal(k.value) for k in node.keywords})
    try:
        return ast.literal_eval(node)
    except ValueError as err:
        raise _NotLiteral(ast.dump(node)) from err
