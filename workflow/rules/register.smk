# A method's registrations of every evaluation pair; a method with a +io row (config instance_optimisation) writes
# both rows in one job, refining each field as it is made (one registration per pair, one job start).
REFINED = sorted(set(INSTANCE_ROWS.values()))  # the method rows that have a +io row


def _register_params(refined):
    return dict(
        scale=config["scale"],
        seed=config["method_seed"],
        split=config["split"],
        method=lambda w: base_method(w.method),
        overrides=method_overrides,
        instance=INSTANCE["settings"] if refined else None,
        device=method_device,
    )


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
    wildcard_constraints:
        method="|".join(re.escape(m) for m in METHODS if m not in REFINED) or "(?!)",
    params:
        **_register_params(refined=False),
    threads: method_threads
    # The longest jobs of a run (bayesian, ants, iterative, elastix on 3D tasks: minutes each) are here: started
    # before the robustness track and the networks' registrations, whose many shorter jobs then keep the other
    # core busy while the last of them finishes (a bayesian brain_mr job started last ran 233 s alone).
    priority: 5
    resources:
        mem_mb=method_mem_mb,
        runtime=register_runtime,
        gpu=method_gpus,
    script:
        "../scripts/register.py"


rule register_refined:
    input:
        dataset=lambda w: dataset_dir(w.task),
        model=model_if_trainable,
    output:
        plain=directory(results("registrations/{task}/{method}")),
        refined=directory(results(f"registrations/{{task}}/{{method}}{instance.SUFFIX}")),
    log:
        results("logs/register/{task}/{method}.log"),
    benchmark:
        results("benchmarks/register/{task}/{method}.tsv")
    wildcard_constraints:
        method="|".join(re.escape(m) for m in REFINED) or "(?!)",
    params:
        **_register_params(refined=True),
    threads: method_threads
    resources:
        mem_mb=method_mem_mb,
        runtime=register_runtime,
        gpu=method_gpus,
    script:
        "../scripts/register.py"
