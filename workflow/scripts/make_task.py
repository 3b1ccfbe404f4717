"""Snakemake entry point of rule `dataset`: generate a synthetic task, or check and link a real Learn2Reg folder."""

import logging

from regbench.tasks.spec import load_spec

sm = snakemake  # noqa: F821 (injected by Snakemake)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
spec = load_spec(sm.params.source)
if spec.synthetic:
    import torch

    from regbench.tasks.generate import make_task

    torch.set_num_threads(sm.threads)  # parallel jobs must not oversubscribe the cores
    make_task(sm.params.source, sm.output[0], scale=sm.params.scale, seed=sm.params.seed,
              inputs=dict(sm.input.items()))
    logging.info("wrote %s", sm.output[0])
else:
    from regbench.tasks.real import link_folder

    link_folder(spec.source, sm.output[0], sm.params.split)
    logging.info("linked %s -> %s", sm.output[0], spec.source)
