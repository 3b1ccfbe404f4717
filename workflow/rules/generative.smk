# The conditional generative model of the beating heart (regbench.generative): trained on the phantom population
# with its ablation, evaluated as its papers do; its model makes the subjects of tasks that need it
# (cardiac_cohort). Runs only when such a task is in the run.

# What one job asks a cluster for, per scale (regbench.generative.study.STUDIES): at paper scale the 3D+t model,
# measured on 2 CPU threads: 10.7 s and 3.2 GB per training step (64^3, batch 8), two models of 4000 steps (24 h),
# and about 1,240 phantom volumes drawn at 5 s each (2 h); a GPU shortens the training.
GENERATIVE_RESOURCES = {"paper": {"mem_mb": 12000, "runtime": 1800}}


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
        mem_mb=GENERATIVE_RESOURCES.get(config["scale"], {}).get("mem_mb", 4000),
        runtime=GENERATIVE_RESOURCES.get(config["scale"], {}).get("runtime", 60),
    script:
        "../scripts/generative.py"
