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
