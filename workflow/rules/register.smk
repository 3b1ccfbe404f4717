rule register:
    input:
        dataset=lambda w: dataset_dir(w.task),
        model=model_if_trainable,
    output:
        directory(results("registrations/{task}/{method}")),
    log:
        results("logs/register/{task}/{method}.log"),
    benchmark:
        results("benchmarks/register/{task}/{method}.tsv")
    params:
        scale=config["scale"],
        seed=config["method_seed"],
        split=config["split"],
        method=lambda w: base_method(w.method),
        overrides=method_overrides,
        instance=lambda w: INSTANCE["settings"] if w.method in INSTANCE_ROWS else None,
        device=method_device,
    threads: method_threads
    resources:
        mem_mb=method_mem_mb,
        runtime=register_runtime,
        gpu=method_gpus,
    script:
        "../scripts/register.py"
