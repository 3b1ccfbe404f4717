rule leaderboard:
    input:
        results("metrics/{task}"),
    output:
        csv=results("leaderboard/{task}.csv"),
        md=results("leaderboard/{task}.md"),
    log:
        results("logs/leaderboard/{task}.log"),
    params:
        metrics=metrics_by_method,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/leaderboard.py"


rule overall_leaderboard:
    input:
        tasks=expand(results("leaderboard/{task}.csv"), task=TASKS),
    output:
        csv=results("leaderboard/overall.csv"),
        md=results("leaderboard/overall.md"),
    log:
        results("logs/leaderboard/overall.log"),
    params:
        tasks=TASKS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/overall_leaderboard.py"


rule subgroups:
    input:
        metrics=results("metrics/{task}"),
        dataset=lambda w: dataset_dir(w.task),
    output:
        csv=results("leaderboard/{task}_subgroups.csv"),
        md=results("leaderboard/{task}_subgroups.md"),
    log:
        results("logs/leaderboard/{task}_subgroups.log"),
    params:
        metrics=metrics_by_method,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/subgroups.py"


# The seed papers' claims checked on this run's results (metrics.claims). MAD's capture range is measured by a
# benchmark, not by the run: its table is read where it lies in the run's folder (re-run this rule with
# --forcerun claims after running the benchmark there).
rule claims:
    input:
        metrics=expand(results("metrics/{task}"), task=TASKS),
        generative=[results("generative/cardiac/evaluation.csv")] if SUBGROUP_TASKS else [],
        sources=[results(f"models/{t}/{m}_source.json") for t, m in training_runs()],  # parameter counts
        robustness=[results(f"robustness/{t}/{m}.csv") for t, m in robustness_runs()],
    output:
        csv=results("claims.csv"),
        md=results("claims.md"),
    log:
        results("logs/leaderboard/claims.log"),
    params:
        metrics={t: {m: results(f"metrics/{t}/{m}/metrics.csv") for tt, m in runs() if tt == t} for t in TASKS},
        instance_rows=INSTANCE_ROWS,
        capture_range=results("mad_capture_range/capture_range.csv"),
        tasks=TASKS,
        cohort=bool(SUBGROUP_TASKS),
        training_runs=training_runs(),
        robustness_runs=robustness_runs(),
        variants={name: VARIANT_SPECS[name] for name in METHODS if name in VARIANT_SPECS},
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/claims.py"
