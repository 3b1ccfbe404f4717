# Figures per task, then the report page with the overall figure and the HTML leaderboards
# (regbench.report). Outputs are report() items, so `snakemake --report` shows them with the provenance.
from types import SimpleNamespace


def plot_inputs(wildcards):
    """A task's dataset and leaderboard, and every method's metrics and registrations on it."""
    return {
        "dataset": dataset_dir(wildcards.task),
        "board": results(f"leaderboard/{wildcards.task}.csv"),
        "metrics": results(f"metrics/{wildcards.task}"),
        "registrations": list(registrations_by_method(wildcards).values()),
    }


def report_runs():
    """Every (task, method) with its metrics, benchmark files and config overrides, for the report page."""
    return [
        {
            "task": t,
            "method": m,
            "metrics": results(f"metrics/{t}/{m}/metrics.csv"),
            "overrides": method_overrides(SimpleNamespace(task=t, method=m)),
            "registered": base_method(m),
            "benchmarks": {  # a +io row was trained and registered by its method's jobs
                kind: results(f"benchmarks/{kind}/{t}/{model_row(m)}.tsv")
                for kind in ("register", "train")
                if kind == "register" or METHOD_CLASSES[m].trainable
            },
        }
        for t, m in runs()
    ]


rule plots:
    input:
        unpack(plot_inputs),
    output:
        report(
            directory(results("plots/{task}")),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Plots",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "{name}"},
        ),
    log:
        results("logs/plots/{task}.log"),
    params:
        metrics=metrics_by_method,
        registrations=registrations_by_method,
        methods=ROWS,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    script:
        "../scripts/plots.py"


rule report:
    input:
        boards=expand(results("leaderboard/{task}.csv"), task=TASKS),
        overall=results("leaderboard/overall.csv"),
        plots=expand(results("plots/{task}"), task=TASKS),
        metrics=expand(results("metrics/{task}"), task=TASKS),
        robustness=[results("leaderboard/robustness.csv")] if robustness_runs() else [],
        subgroups=expand(results("leaderboard/{task}_subgroups.csv"), task=SUBGROUP_TASKS),
        generative=[results("generative/cardiac/evaluation.csv")] if SUBGROUP_TASKS else [],
        claims=results("claims.csv"),
        curves=[results(f"models/{t}/{m}_validation.csv") for t, m in training_runs()],
        sources=[results(f"models/{t}/{m}_source.json") for t, m in training_runs()],
    output:
        html=report(results("report.html"), caption="../report/report.rst", category="Report"),
        tables=report(
            directory(results("leaderboard/html")),
            patterns=["{name}.html"],
            caption="../report/leaderboard.rst",
            category="Leaderboard",
            labels={"table": "{name}"},
        ),
        overview=report(
            directory(results("plots/overall")),
            patterns=["{name}.png"],
            caption="../report/rank_heatmap.rst",
            category="Leaderboard",
            labels={"figure": "{name}"},
        ),
    log:
        results("logs/report/report.log"),
    params:
        config=config,
        tasks=TASKS,
        subgroup_tasks=SUBGROUP_TASKS,
        runs=report_runs(),
        training_runs=training_runs(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/report.py"
