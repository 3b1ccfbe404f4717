# Validation of the configuration and the helpers the rules share.
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

TASKS = [str(t) for t in config["tasks"]]


wildcard_constraints:
    task="[A-Za-z0-9_]+",


def dataset_dir(task):
    """The Learn2Reg folder of a task, generated under results/data/."""
    return f"results/data/{task}"


def final_outputs():
    return [dataset_dir(task) for task in TASKS]
