"""The bounded training cache: keeps the most recently used items, evicts the oldest."""

from __future__ import annotations

import pytest

from regbench.cache import BoundedCache


def test_cache_makes_each_value_once_while_it_fits():
    made = []
    cache: BoundedCache[int, int] = BoundedCache(3)
    for key in [1, 2, 1, 3, 2, 1]:
        assert cache.get(key, lambda k=key: made.append(k) or 10 * k) == 10 * key
    assert made == [1, 2, 3]


def test_cache_evicts_the_least_recently_used_item_beyond_its_capacity():
    cache: BoundedCache[int, int] = BoundedCache(2)
    for key in [1, 2, 1, 3]:  # 2 is the least recently used when 3 arrives
        cache.get(key, lambda k=key: k)
    assert len(cache) == 2 and 1 in cache and 3 in cache and 2 not in cache


def test_cache_needs_room_for_one_item():
    with pytest.raises(ValueError, match="capacity"):
        BoundedCache(0)


def test_indexing_returns_a_cached_value_and_refreshes_it():
    cache: BoundedCache[int, int] = BoundedCache(2)
    cache.get(1, lambda: 1)
    cache.get(2, lambda: 2)
    assert cache[1] == 1  # now 2 is the least recently used
    cache.get(3, lambda: 3)
    assert 2 not in cache and 1 in cache
    with pytest.raises(KeyError):
        cache[2]
