# One job per task scores every method's fields on it: an evaluation takes about a second, less than starting
# a job, so one job per (task, method) spent most of a smoke run's evaluation time on start-up.
rule evaluate:
    input:
        dataset=lambda w: dataset_dir(w.task),
        registrations=lambda w: list(registrations_by_method(w).values()),
    output:
        directory(results("metrics/{task}")),  # <method>/metrics.csv and <method>/evaluation.json
    log:
        results("logs/evaluate/{task}.log"),
    params:
        methods=lambda w: list(registrations_by_method(w)),
        split=config["split"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/evaluate.py"
