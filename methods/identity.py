"""The identity: a zero displacement, the floor every method must beat (Learn2Reg's "initial" row)."""

from __future__ import annotations

from typing import ClassVar

from regbench.displacement import Displacement
from regbench.method import Capabilities, Method, Resources
from regbench.pair import Pair


class Identity(Method):
    """Leaves the moving image where it is."""

    name = "identity"
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    resources: ClassVar[Resources] = Resources(threads=1, mem_mb=1000, pair_seconds=0.1)

    def estimate(self, pair: Pair) -> Displacement:
        return Displacement.zeros(pair.fixed.image.shape)
