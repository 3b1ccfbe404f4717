rule train:
    input:
        dataset=lambda w: dataset_dir(w.task),
    output:
        model=results("models/{task}/{method}.pt"),
        curve=results("models/{task}/{method}_validation.csv"),  # validation Dice over the steps (report)
    log:
        results("logs/train/{task}/{method}.log"),
    benchmark:
        results("benchmarks/train/{task}/{method}.tsv")
    params:
        scale=config["scale"],
        seed=config["method_seed"],
        overrides=method_overrides,
        device=method_device,
        workdir=lambda w: results(f"models/{w.task}/{w.method}_work"),
    threads: method_threads
    # Trainings head the longest chains (train, register, evaluate, plots, report): started first, they do not
    # leave one core idle at the end of the run.
    priority: 10
    resources:
        mem_mb=method_mem_mb,
        runtime=train_runtime,
        gpu=method_gpus,
    script:
        "../scripts/train.py"
