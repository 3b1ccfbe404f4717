"""Which tasks a method's declarations let the workflow run it on."""

from __future__ import annotations

import pytest

from regbench.capabilities import Capabilities


@pytest.mark.parametrize("ndim, multimodal, mono_3d, multi_any", [
    (3, False, True, True), (2, False, False, True), (3, True, False, True), (2, True, False, True),
])
def test_a_method_suits_tasks_of_its_dimensions_and_multimodal_ones_only_when_it_says_so(ndim, multimodal, mono_3d,
                                                                                          multi_any):
    assert Capabilities(dims=frozenset({3})).suits(ndim, multimodal) is mono_3d
    assert Capabilities(multimodal=True).suits(ndim, multimodal) is multi_any
