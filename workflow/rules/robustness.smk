# The adversarial robustness track (regbench.robustness): per task and method the per-pair table, then one
# table of every task and method. Only for the methods config robustness.methods lists.
ROBUSTNESS = config["robustness"]
_unknown = sorted(set(ROBUSTNESS.get("methods", [])) - set(METHODS))
if _unknown:
    raise WorkflowError(f"robustness: methods {', '.join(_unknown)} are not among the run's methods "
                        f"({', '.join(METHODS)})")


def robustness_runs():
    """Every (task, method) the robustness track runs."""
    return [(t, m) for t, m in runs() if m in ROBUSTNESS.get("methods", [])]


def robustness_runtime(wildcards):
    """Registrations per pair: the clean one, and per budget the random draws and up to two searches."""
    resources = METHOD_CLASSES[wildcards.method].resources
    per_pair = 1 + len(ROBUSTNESS["budgets"]) * (ROBUSTNESS["draws"] + 2 * ROBUSTNESS["evaluations"])
    size = task_size(wildcards.task)
    seconds = job_costs.pair_seconds(resources, size) * per_pair * min(ROBUSTNESS["pairs"], size.pairs)
    return job_costs.time_limit_minutes(seconds)


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
