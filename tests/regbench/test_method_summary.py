"""Method declarations read from source: the same as the classes', without importing torch."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from regbench.method_summary import _from_source, _NotLiteral, method_summary
from regbench.registry import list_methods, method_class


@pytest.mark.parametrize("name", list_methods())
def test_the_summary_from_source_equals_the_class(name):
    cls = method_class(name)
    summary = method_summary(name)
    assert (summary.capabilities, summary.resources, summary.trainable) == \
        (cls.capabilities, cls.resources, cls.trainable)


def test_every_shipped_method_is_read_without_importing_it():
    code = ("import sys\nfrom regbench.method_summary import method_summary\nfrom regbench.registry import "
            "list_methods\nfor name in list_methods():\n    method_summary(name)\n"
            "from regbench.cli import main\nmain(['methods'])\nassert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("body", [
    "class M(Method):\n    name = 'm'\n    capabilities = Capabilities(dims=DIMS)\n    resources = Resources()\n",
    "class M(Affine):\n    name = 'm'\n    capabilities = Capabilities()\n    resources = Resources()\n",
    "class M(Method):\n    name = 'm'\n    resources = Resources()\n",  # capabilities inherited
])
def test_declarations_only_an_import_can_evaluate_are_not_guessed(body):
    with pytest.raises(_NotLiteral):
        _from_source("m", ast.parse(body))
