"""Snakemake entry point of rules `register` and `register_refined`: register every evaluation pair of a task with
one method (and, for `register_refined`, refine each field by instance optimisation into the <method>+io row)."""

import logging
from pathlib import Path

from regbench.dataset import read_dataset
from regbench.job_exit import exit_job
from regbench.methods.components.instance import InstanceOptimised, InstanceParams
from regbench.registry import loaded_method
from regbench.runner import register_split

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
method = loaded_method(sm.params.method, sm.input.model, scale=sm.params.scale, seed=sm.params.seed,
                       threads=sm.threads, device=sm.params.device, **sm.params.overrides)
refined = None
if sm.params.instance is not None:
    refiner = InstanceOptimised(method, InstanceParams.preset(sm.params.scale).replace(**sm.params.instance))
    refined = (refiner, Path(sm.output.refined))
register_split(method, read_dataset(sm.input.dataset), Path(sm.output[0]), split=sm.params.split, refined=refined)
exit_job()  # skips the interpreter teardown (regbench.job_exit)
