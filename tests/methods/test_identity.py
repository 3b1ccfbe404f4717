"""identity: exactly zero, whatever the pair."""

from __future__ import annotations

import pytest

from regbench.registry import get_method


@pytest.mark.parametrize("shape", [(20, 18), (12, 10, 9)])
def test_returns_exactly_zero_on_the_fixed_grid(synthetic_pair, shape):
    pair, _ = synthetic_pair(shape, seed=1)
    disp = get_method("identity").register(pair)
    assert disp.data.shape == (*shape, len(shape))
    assert not disp.data.any()
