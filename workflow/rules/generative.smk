# The conditional generative model of the beating heart (regbench.generative): trained on the phantom population
# with its ablation, evaluated as its papers do; its model makes the subjects of tasks that need it
# (cardiac_cohort). Runs only when such a task is in the run.
rule generative:
    output:
        evaluation=results("generative/cardiac/evaluation.csv"),
        model=results("generative/cardiac/cheart.pt"),
        ablation=results("generative/cardiac/unconditioned.pt"),
        losses=[results("generative/cardiac/cheart_loss.csv"), results("generative/cardiac/unconditioned_loss.csv")],
    log:
        results("logs/generative/cardiac.log"),
    benchmark:
        results("benchmarks/generative/cardiac.tsv")
    params:
        scale=config["scale"],
        seed=config["method_seed"],
    threads: 2
    priority: 20  # it heads the cohort task's whole chain (dataset, training, registration...)
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/generative.py"
