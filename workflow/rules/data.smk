rule dataset:
    input:
        unpack(dataset_inputs),
    output:
        directory(results("data/{task}")),
    log:
        results("logs/dataset/{task}.log"),
    params:
        source=lambda w: TASK_SOURCES[w.task],
        scale=config["scale"],
        seed=config["seed"],
        split=config["split"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    script:
        "../scripts/make_task.py"
