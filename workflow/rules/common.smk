# Validation of the configuration and the helpers the rules share.
import importlib
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from regbench import job_costs
from regbench.errors import RegbenchError
from regbench.methods.components import instance
from regbench.registry import check_overrides, config_overrides, list_methods, method_class
from regbench.tasks.spec import list_tasks, task_specs

validate(config, schema="../schemas/config.schema.yaml")

# Idle OpenMP threads otherwise spin: on a machine whose cores other jobs share, two spinning torch threads
# ran 10-20 times slower. Jobs inherit this environment (set before any of them imports torch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Every output of the run lies under this one folder (config results_dir), so runs of different subsets, splits
# or data can keep their own leaderboards and report side by side.
RESULTS = os.path.normpath(config["results_dir"])


def results(path):
    """``path`` (relative to the run's output folder) in the run's output folder."""
    return f"{RESULTS}/{path}"


SPECS = task_specs([str(t) for t in config["tasks"]])  # task name -> spec (a real task: its json's name)
TASKS = list(SPECS)
TASK_SOURCES = {name: str(spec.path) if spec.synthetic else spec.source for name, spec in SPECS.items()}
# Variants (config variants): a registered method under other settings, a row of its own trained and ranked like
# any method (an ablation: vrnet's initial network alone), run where its method is in the run. METHODS is every
# method row the run trains or registers itself: the config's methods, then their variants.
VARIANT_SPECS = {str(name): {"method": str(spec["method"]), "settings": spec.get("settings") or {},
                              "tasks": spec.get("tasks")} for name, spec in config["variants"].items()}
_clash = sorted(set(VARIANT_SPECS) & set(list_methods()))
if _clash:
    raise WorkflowError(f"variants: {', '.join(_clash)} is the name of a registered method; name the variant otherwise")
for _name, _variant in VARIANT_SPECS.items():
    try:  # an unknown method or a typo in the settings fails the dry run, not the variant's jobs
        method_class(_variant["method"]).Params.preset(config["scale"]).replace(**_variant["settings"])
    except RegbenchError as err:
        raise WorkflowError(f"variants: {_name}: {err}") from err
METHODS = [str(m) for m in config["methods"]]
METHODS += [name for name, variant in VARIANT_SPECS.items() if variant["method"] in METHODS]
# Instance optimisation (config instance_optimisation): each listed method (or variant) the run has gets a second
# row, <method>+io, registered by the same trained model with its field refined per pair (regbench.methods.
# components.instance). INSTANCE_ROWS maps such a row to its method row; ROWS is every row of the leaderboards.
INSTANCE = config["instance_optimisation"]
_unknown = sorted(set(INSTANCE["methods"]) - set(list_methods()) - set(VARIANT_SPECS))
if _unknown:
    raise WorkflowError(f"instance_optimisation: unknown methods {', '.join(_unknown)}; registered methods: "
                        f"{', '.join(list_methods())}")
try:  # a typo in the settings fails the dry run, not every +io job
    instance.InstanceParams.preset(config["scale"]).replace(**INSTANCE["settings"])
except RegbenchError as err:
    raise WorkflowError(f"instance_optimisation: settings: {err}") from err
INSTANCE_ROWS = {f"{m}{instance.SUFFIX}": m for m in METHODS if m in INSTANCE["methods"]}
ROWS = [*METHODS, *INSTANCE_ROWS]


def model_row(row):
    """The method row whose trained model a row registers with (``voxelmorph`` for ``voxelmorph+io``)."""
    return INSTANCE_ROWS.get(row, row)


def base_method(row):
    """The registered method behind a leaderboard row (``vrnet`` for ``vrnet_initial`` and ``vrnet+io``)."""
    row = model_row(row)
    return VARIANT_SPECS[row]["method"] if row in VARIANT_SPECS else row


METHOD_CLASSES = {row: method_class(base_method(row)) for row in ROWS}
# Built-in names too: a subset run (--config tasks=[brain_mr]) keeps config.yaml's overrides of the other tasks.
check_overrides(config, [*TASKS, *list_tasks()])
for _name, _spec in SPECS.items():
    if not _spec.synthetic and not _spec.pair_counts[config["split"]]:
        raise WorkflowError(f"task {_name} ({_spec.source}): its dataset json lists no {config['split']} pairs; "
                            f"run it with another split (--config split=...)")


wildcard_constraints:
    task="|".join(re.escape(t) for t in TASKS),
    method=r"[A-Za-z0-9_]+(\+io)?",


def dataset_dir(task):
    """The Learn2Reg folder of a task, generated under RESULTS/data/."""
    return results(f"data/{task}")


def _generator(task):
    """The generator module of a synthetic task (None for real data)."""
    spec = SPECS[task]
    return importlib.import_module(f"regbench.tasks.{spec.generator}") if spec.synthetic else None


# Tasks whose datasets record each subject's covariates: the workflow analyses them by subgroup.
SUBGROUP_TASKS = [t for t in TASKS if getattr(_generator(t), "RECORDS_COVARIATES", False)]


def dataset_inputs(wildcards):
    """Files other jobs make that a task's generator takes (``cardiac_cohort``: the generative model)."""
    return {name: results(path) for name, path in getattr(_generator(wildcards.task), "WORKFLOW_INPUTS", {}).items()}


def supports(method, task):
    """Whether the method registers images of the task's dimensionality and, on a multi-modal task, declares
    that it handles pairs whose intensities do not correspond (``Capabilities.multimodal``)."""
    return METHOD_CLASSES[method].capabilities.suits(SPECS[task].ndim, SPECS[task].multimodal)


def runs():
    """Every (task, method) the benchmark runs: each row on each task it supports, a variant (and its +io row) only
    on the tasks it lists, where it lists any."""
    return [(t, m) for t in TASKS for m in ROWS if supports(m, t) and variant_runs_on(model_row(m), t)]


def variant_runs_on(row, task):
    listed = VARIANT_SPECS[row]["tasks"] if row in VARIANT_SPECS else None
    return listed is None or task in listed


def training_runs():
    """Every (task, method) the run trains, in the order of runs()."""
    return [(t, m) for t, m in runs() if m in METHODS and METHOD_CLASSES[m].trainable]


def model_if_trainable(wildcards):
    """The trained state a learning method registers with; nothing for classic methods."""
    if METHOD_CLASSES[wildcards.method].trainable:
        return results(f"models/{wildcards.task}/{model_row(wildcards.method)}.pt")
    return []


def method_overrides(wildcards):
    """Config overrides for one method row on one task: method-wide first, then task-specific, then per scale (the
    registered method's), then a variant's own settings."""
    row = model_row(wildcards.method)
    overrides = config_overrides(config, wildcards.task, base_method(row))
    return {**overrides, **(VARIANT_SPECS[row]["settings"] if row in VARIANT_SPECS else {})}


def registrations_by_method(wildcards):
    """Each method's registration folder on one task, keyed by method name."""
    return {m: results(f"registrations/{t}/{m}") for t, m in runs() if t == wildcards.task}


def metrics_by_method(wildcards):
    """Each method's metrics table on one task (inside the task's evaluate output), keyed by method name."""
    return {m: results(f"metrics/{t}/{m}/metrics.csv") for t, m in runs() if t == wildcards.task}


def method_threads(wildcards):
    """The method's declared threads, at most half the run's cores (`--cores`): two jobs side by side finish the
    run sooner than one job with twice the threads (bayesian on a brain_mr pair: 44.7 s on one thread, 30.1 s wall
    but 58.6 s CPU on two), so on a 2-core machine every job has one thread. One on smoke data, where a second
    thread gains nothing on images a few dozen voxels wide."""
    if config["scale"] == "smoke":
        return 1
    declared = METHOD_CLASSES[wildcards.method].resources.threads
    cores = workflow.global_resources.get("_cores")  # None where an executor submits jobs (no local core count)
    return declared if cores is None else max(1, min(declared, cores // 2))


def method_mem_mb(wildcards):
    return job_costs.peak_mb(METHOD_CLASSES[wildcards.method].resources, task_size(wildcards.task))


def uses_gpu(method):
    """Whether jobs of ``method`` run on the configured GPU (config ``device``) rather than the CPU."""
    return config["device"] != "cpu" and METHOD_CLASSES[method].resources.gpu


def method_device(wildcards):
    return config["device"] if uses_gpu(wildcards.method) else "cpu"


def method_gpus(wildcards):
    return int(uses_gpu(wildcards.method))


def task_size(task):
    """The task at the configured scale and split, as job costs depend on it (``regbench.job_costs``)."""
    return job_costs.task_size(SPECS[task], config["scale"], config["split"])


def train_runtime(wildcards):
    resources = METHOD_CLASSES[wildcards.method].resources
    return job_costs.time_limit_minutes(job_costs.train_seconds(resources, task_size(wildcards.task)))


def register_runtime(wildcards):
    resources = METHOD_CLASSES[wildcards.method].resources
    return job_costs.time_limit_minutes(job_costs.register_seconds(resources, task_size(wildcards.task)))


def final_outputs():
    return [
        results("leaderboard/overall.csv"),
        *expand(results("leaderboard/{task}.csv"), task=TASKS),
        *expand(results("leaderboard/{task}_subgroups.csv"), task=SUBGROUP_TASKS),
        *([results("generative/cardiac/evaluation.csv")] if SUBGROUP_TASKS else []),
        results("claims.md"),
        results("report.html"),  # with the robustness track's section where the run includes the track
    ]
