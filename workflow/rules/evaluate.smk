rule evaluate:
    input:
        dataset=lambda w: dataset_dir(w.task),
        registrations=results("registrations/{task}/{method}"),
    output:
        metrics=results("metrics/{task}/{method}/metrics.csv"),
        evaluation=results("metrics/{task}/{method}/evaluation.json"),
    log:
        results("logs/evaluate/{task}/{method}.log"),
    params:
        split=config["split"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/evaluate.py"
