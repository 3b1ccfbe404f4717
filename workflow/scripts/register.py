"""Snakemake entry point of rule `register`: register every evaluation pair of a task with one method (or, for a
``<method>+io`` row, with the method followed by instance optimisation)."""

import logging
from pathlib import Path

from regbench.dataset import read_dataset
from regbench.methods.components.instance import InstanceOptimised, InstanceParams
from regbench.registry import loaded_method
from regbench.runner import register_split

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
method = loaded_method(sm.params.method, sm.input.model, scale=sm.params.scale, seed=sm.params.seed,
                       threads=sm.threads, device=sm.params.device, **sm.params.overrides)
if sm.params.instance is not None:  # a <method>+io row: its field refined on each pair
    method = InstanceOptimised(method, InstanceParams.preset(sm.params.scale).replace(**sm.params.instance))
register_split(method, read_dataset(sm.input.dataset), Path(sm.output[0]), split=sm.params.split)
