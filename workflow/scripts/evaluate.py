"""Snakemake entry point of rule `evaluate`: score every method's fields on one task, runtimes included."""

import logging
from pathlib import Path

import pandas as pd

from regbench.dataset import read_dataset
from regbench.metrics.evaluate import evaluate_folder, write_evaluation
from regbench.pair import PairId
from regbench.runner import RUNTIME_FILE

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
task = read_dataset(sm.input.dataset)
keys = {pair.key: pair for pair in task.pair_ids(sm.params.split)}
for method, registrations in zip(sm.params.methods, sm.input.registrations, strict=True):
    runs = pd.read_csv(Path(registrations) / RUNTIME_FILE)
    runtimes: dict[PairId, float] = {keys[row.pair]: row.runtime_s for row in runs.itertuples() if row.status == "ok"}
    evaluation = evaluate_folder(task, registrations, split=sm.params.split, runtimes=runtimes)
    for key, reason in evaluation.failures.items():
        logging.warning("%s failed %s: %s", method, key, reason)
    for message in evaluation.not_scored_messages():  # e.g. DSC on a test split whose labels are not published
        logging.warning("%s: %s", method, message)
    write_evaluation(evaluation, Path(sm.output[0]) / method)
