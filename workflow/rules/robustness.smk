# The adversarial robustness track (regbench.robustness): per task and method the per-pair table, then one
# table of every task and method. For the methods config robustness.methods lists that the run has, on the tasks
# robustness.tasks lists that the run has (null: all of them), so a run on a subset keeps the track where it can.
# The track's settings, those of the run's scale (robustness.scales) over the common ones.
ROBUSTNESS = {key: value for key, value in config["robustness"].items() if key != "scales"} | (
    config["robustness"].get("scales", {}).get(config["scale"]) or {})
_unknown = sorted(set(ROBUSTNESS["methods"]) - set(list_methods()) - set(VARIANT_SPECS))
if _unknown:
    raise WorkflowError(f"robustness: unknown methods {', '.join(_unknown)}; registered methods: "
                        f"{', '.join(list_methods())}")


def robustness_runs():
    """Every (task, method) the robustness track runs."""
    tasks = ROBUSTNESS.get("tasks")
    return [(t, m) for t, m in runs() if m in ROBUSTNESS["methods"] and (tasks is None or t in tasks)]


def robustness_runtime(wildcards):
    resources = METHOD_CLASSES[wildcards.method].resources
    return job_costs.time_limit_minutes(job_costs.robustness_seconds(resources, task_size(wildcards.task), ROBUSTNESS))


rule robustness:
    input:
        dataset=lambda w: dataset_dir(w.task),
        model=model_if_trainable,
    output:
        results("robustness/{task}/{method}.csv"),
    log:
        results("logs/robustness/{task}/{method}.log"),
    benchmark:
        results("benchmarks/robustness/{task}/{method}.tsv")
    params:
        scale=config["scale"],
        seed=config["method_seed"],
        split=config["split"],
        method=lambda w: base_method(w.method),
        overrides=method_overrides,
        device=method_device,
        track=ROBUSTNESS,
    threads: method_threads
    resources:
        mem_mb=method_mem_mb,
        runtime=robustness_runtime,
        gpu=method_gpus,
    script:
        "../scripts/robustness.py"


rule robustness_leaderboard:
    input:
        [results(f"robustness/{t}/{m}.csv") for t, m in robustness_runs()],
    output:
        csv=results("leaderboard/robustness.csv"),
        md=results("leaderboard/robustness.md"),
    log:
        results("logs/leaderboard/robustness.log"),
    params:
        runs=robustness_runs(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/robustness_leaderboard.py"
