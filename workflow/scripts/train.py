"""Snakemake entry point of rule `train`: load the shipped model when it was trained exactly as this job would
train (``regbench.pretrained``; not with ``--config train=scratch``), else fit the method on the task's training
pairs; save its state and say which it did."""

import logging
from pathlib import Path

from regbench import pretrained
from regbench.dataset import read_dataset
from regbench.job_exit import exit_job
from regbench.method import NetworkMethod
from regbench.registry import get_method
from regbench.runner import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
method = get_method(sm.params.method, scale=sm.params.scale, seed=sm.params.seed, threads=sm.threads,
                    device=sm.params.device, **sm.params.overrides)
task = read_dataset(sm.input.dataset)
record = pretrained.training_record(method, task, sm.params.scale)
if sm.params.use_shipped:
    loaded, reason = pretrained.use_shipped(record, sm.wildcards.method, Path(sm.output.model),
                                            Path(sm.output.curve), Path(sm.params.shipped_dir or pretrained.SHIPPED_DIR))
else:
    loaded, reason = False, "--config train=scratch"
logging.info("%s", reason)
if loaded:
    method.load(sm.output.model)  # the shipped state must fit the network this config builds
else:
    train(method, task, Path(sm.output.model), Path(sm.params.workdir), Path(sm.output.curve))
source = pretrained.SHIPPED if loaded else pretrained.TRAINED
parameters = method.parameter_count() if isinstance(method, NetworkMethod) else None
pretrained.write_provenance(Path(sm.output.source), source, reason, record, parameters)
exit_job()  # skips the interpreter teardown (regbench.job_exit)
