"""A bounded least-recently-used cache for what training prepares from the dataset.

Training methods load and prepare a case on its first visit and keep it, so later steps do no IO. On a real
dataset with thousands of training images, keeping every case would fill the memory; the cache keeps the most
recently used ``capacity`` items and prepares an evicted one again when it comes back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")
TRAINING_CACHE_ITEMS = 64  # prepared training cases kept in memory: every case of a CPU-sized synthetic task


class BoundedCache(Generic[KeyT, ValueT]):
    """At most ``capacity`` values, the least recently used one evicted first."""

    def __init__(self, capacity: int = TRAINING_CACHE_ITEMS) -> None:
        if capacity < 1:
            raise ValueError(f"BoundedCache: capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[KeyT, ValueT] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __getitem__(self, key: KeyT) -> ValueT:
        """The cached value of ``key`` (KeyError if absent), now the most recently used."""
        self._items.move_to_end(key)
        return self._items[key]

    def get(self, key: KeyT, make: Callable[[], ValueT]) -> ValueT:
        """The value of ``key``, made by ``make()`` (and kept) if it is not cached."""
        if key in self._items:
            return self[key]
        value = make()
        self._items[key] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value
