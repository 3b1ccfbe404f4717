"""One colour per method, keyed by name: a method looks the same in every plot and table of a report."""

from __future__ import annotations

from collections.abc import Iterable

import seaborn as sns
from matplotlib.colors import to_hex

QUALITATIVE_MAX = 10  # tab10's distinct colours; more methods get evenly spaced hues instead


def method_palette(methods: Iterable[str]) -> dict[str, str]:
    """Hex colours for ``methods``, assigned in sorted name order.

    Sorting (rather than the order of appearance) makes the colours depend on the set of methods only, so a
    task that one method skips, or a second report on the same methods, keeps every method's colour.
    """
    names = sorted(set(methods))
    colours = sns.color_palette("tab10" if len(names) <= QUALITATIVE_MAX else "husl", len(names))
    return {name: to_hex(colour) for name, colour in zip(names, colours, strict=True)}
