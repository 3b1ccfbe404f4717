rule train:
    input:
        dataset=lambda w: dataset_dir(w.task),
    output:
        model=results("models/{task}/{method}.pt"),
        curve=results("models/{task}/{method}_validation.csv"),  # validation Dice over the steps (report)
        source=results("models/{task}/{method}_source.json"),  # loaded from the package or trained, and why
    log:
        results("logs/train/{task}/{method}.log"),
    benchmark:
        results("benchmarks/train/{task}/{method}.tsv")
    params:
        scale=config["scale"],
        seed=config["method_seed"],
        method=lambda w: base_method(w.method),
        use_shipped=config["train"] == "pretrained",
        shipped_dir=config["pretrained_dir"],
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


PRETRAINED_COMMAND = "snakemake --cores 2 pretrained --config train=scratch" + (
    "" if config["scale"] == "default" else f" scale={config['scale']}")
SHIPPABLE = [(t, m) for t, m in training_runs() if SPECS[t].synthetic]  # a real task's data is not regbench's


rule pretrained:
    """The models to ship (regbench/pretrained/<scale>/, README "Pretrained models"): `snakemake --cores 2
    pretrained --config train=scratch [scale=smoke]` trains every learning method (and variant) on every built-in
    task and writes each model, its validation curve and its record under results/pretrained/<scale>/ with the
    command, commit, date and training cost."""
    input:
        provenance=[results(f"models/{t}/{m}_source.json") for t, m in SHIPPABLE],
        models=[results(f"models/{t}/{m}.pt") for t, m in SHIPPABLE],
        curves=[results(f"models/{t}/{m}_validation.csv") for t, m in SHIPPABLE],
        benchmarks=[results(f"benchmarks/train/{t}/{m}.tsv") for t, m in SHIPPABLE],
    output:
        directory(results(f"pretrained/{config['scale']}")),  # per scale: a smoke export keeps the default one
    log:
        results("logs/pretrained.log"),
    params:
        command=PRETRAINED_COMMAND,
        rows=[m for _, m in SHIPPABLE],
        config={key: config[key] for key in ("scale", "seed", "method_seed")},
    script:
        "../scripts/pretrained.py"
