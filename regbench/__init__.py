"""regbench: a Learn2Reg-style benchmarking harness for medical image registration.

The core every other part shares: images and pairs, the Learn2Reg dataset format, displacement fields and
the spatial operations on them.
"""

from regbench.dataset import Task, read_dataset, validate_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.errors import DatasetError, RegbenchError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId, Pair, PairId

__all__ = [
    "Case", "CaseId", "DatasetError", "Displacement", "Image", "LabelMap", "Pair", "PairId", "RegbenchError",
    "Task", "read_dataset", "validate_dataset", "write_dataset",
]
