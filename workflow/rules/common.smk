# Validation of the configuration and the helpers the rules share.
from snakemake.utils import validate

from regbench.registry import method_class
from regbench.tasks.spec import load_spec

validate(config, schema="../schemas/config.schema.yaml")

TASKS = [str(t) for t in config["tasks"]]
METHODS = [str(m) for m in config["methods"]]
SPECS = {task: load_spec(task) for task in TASKS}
METHOD_CLASSES = {method: method_class(method) for method in METHODS}


wildcard_constraints:
    task="|".join(TASKS),
    method="[A-Za-z0-9_]+",


def dataset_dir(task):
    """The Learn2Reg folder of a task, generated under results/data/."""
    return f"results/data/{task}"


def supports(method, task):
    """Whether the method registers images of the task's dimensionality."""
    return SPECS[task].ndim in METHOD_CLASSES[method].capabilities.dims


def runs():
    """Every (task, method) the benchmark runs."""
    return [(t, m) for t in TASKS for m in METHODS if supports(m, t)]


def model_if_trainable(wildcards):
    """The trained state a learning method registers with; nothing for classic methods."""
    if METHOD_CLASSES[wildcards.method].trainable:
        return f"results/models/{wildcards.task}/{wildcards.method}.pt"
    return []


def method_overrides(wildcards):
    """Config overrides for one method on one task: method-wide first, then task-specific."""
    merged = dict(config["overrides"].get(wildcards.method, {}))
    merged.update(config["task_overrides"].get(wildcards.task, {}).get(wildcards.method, {}))
    return merged


def metrics_by_method(wildcards):
    """Each method's metrics table on one task, keyed by method name."""
    return {m: f"results/metrics/{t}/{m}/metrics.csv" for t, m in runs() if t == wildcards.task}


def method_threads(wildcards):
    return METHOD_CLASSES[wildcards.method].resources.threads


def method_mem_mb(wildcards):
    return METHOD_CLASSES[wildcards.method].resources.mem_mb


def final_outputs():
    return ["results/leaderboard/overall.csv", *expand("results/leaderboard/{task}.csv", task=TASKS)]
