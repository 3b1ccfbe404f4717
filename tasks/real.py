"""Real Learn2Reg folders as task sources: check a downloaded dataset and link it into the workflow's results.

A real dataset can be gigabytes (LUMIR: 3384 volumes), so nothing is copied: ``results/data/<name>/`` becomes a
folder of symbolic links, one per entry of the dataset folder (the json, ``imagesTr/``, ``labelsTr/``...).
Deleting or re-making it (Snakemake removes a job's outputs before it reruns the job; ``io.atomic_dir`` replaces
it) removes only the links, never the user's files, which a link to the folder itself would not guarantee.

The check reads the json, every file of the evaluation pairs of the split being run (images, label maps, masks,
keypoints where present) and confirms every training image exists, so a broken download fails in the
``dataset`` job with one line naming the file, not an hour later in ``register``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from regbench import io
from regbench.dataset import Split, Task, read_dataset
from regbench.errors import DatasetError

log = logging.getLogger(__name__)


def check_folder(source: str | Path, split: Split) -> Task:
    """Read the json and the files of ``split``'s pairs, and stat every training image; raise on a problem."""
    task = read_dataset(source)
    pairs = task.pair_ids(split)
    if not pairs:
        raise DatasetError(source, f"the dataset json lists no {split} pairs "
                                   f"(registration_{split}{', validation' if split == 'val' else ''})")
    for pair in pairs:
        task.load_pair(pair)
    for case in task.training_cases(exclude_eval=False):
        if not task.image_path(case).is_file():
            raise DatasetError(task.image_path(case), "file not found (listed under training in the dataset json)")
    log.info("%s: %d %s pairs read, %d training images present", task.name, len(pairs), split,
             len(task.training_cases(exclude_eval=False)))
    return task


def link_folder(source: str | Path, outdir: str | Path, split: Split) -> Path:
    """Check ``source`` (``check_folder``) and make ``outdir`` a folder of links to its entries, atomically."""
    source = Path(source).absolute()
    check_folder(source, split)
    with io.atomic_dir(outdir) as staging:
        for entry in sorted(source.iterdir()):
            os.symlink(entry, staging / entry.name, target_is_directory=entry.is_dir())
    return Path(outdir)
