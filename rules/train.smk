rule train_model:
    """Train one backend on the common split and export its deployable model.

    model.json is written last, after the model file, so a killed training never
    leaves an export that looks finished.
    """
    input:
        train="results/{system}/split/train.extxyz",
        valid="results/{system}/split/valid.extxyz",
        summary="results/{system}/split/selection.json",
    output:
        "results/{system}/models/{backend}/model.json",
    log:
        "logs/train_model/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/train_model/{system}_{backend}.tsv"
    wildcard_constraints:
        backend="|".join(TRAINED_BACKENDS) or "^$",
    conda:
        # one environment per backend (their torch stacks conflict); allegro's equals nequip's
        "../envs/{backend}.yaml"
    threads: lambda w: config["backends"][w.backend]["threads"]
    resources:
        mem_mb=lambda w: config["backends"][w.backend]["mem_mb"],
        runtime=lambda w: config["backends"][w.backend]["runtime_min"],
        gpu=1,
    params:
        # hyperparameters only: threads, memory and runtime do not change the model
        backend_config=lambda w: canonical(qconfig.hyperparameters(config["backends"][w.backend])),
        # the usefulness gate a model must pass before it is exported
        gate=lambda w: canonical(qconfig.training_gate(config)),
        workdir=lambda w: f"results/{w.system}/training/{w.backend}",
        split_dir=subpath(input.summary, parent=True),
        model_dir=subpath(output[0], parent=True),
    script:
        "../scripts/train_model.py"


rule train_model_replica:
    """Model k = 1..training.seeds-1 of a trained backend: train_model's training on the same
    split with the seed of model k (qdff.training.with_seed); evaluated beside model 0 for the
    spread of the held-out errors over seeds, used nowhere else."""
    input:
        train="results/{system}/split/train.extxyz",
        valid="results/{system}/split/valid.extxyz",
        summary="results/{system}/split/selection.json",
    output:
        "results/{system}/models/{backend}/replicas/{replica}/model.json",
    log:
        "logs/train_model_replica/{system}_{backend}_{replica}.log",
    benchmark:
        "results/benchmarks/train_model_replica/{system}_{backend}_{replica}.tsv"
    wildcard_constraints:
        backend="|".join(TRAINED_BACKENDS) or "^$",
    conda:
        "../envs/{backend}.yaml"
    threads: lambda w: config["backends"][w.backend]["threads"]
    resources:
        mem_mb=lambda w: config["backends"][w.backend]["mem_mb"],
        runtime=lambda w: config["backends"][w.backend]["runtime_min"],
        gpu=1,
    params:
        backend_config=lambda w: canonical(qconfig.hyperparameters(config["backends"][w.backend])),
        gate=lambda w: canonical(qconfig.training_gate(config)),
        workdir=lambda w: f"results/{w.system}/training/{w.backend}/replicas/{w.replica}",
        split_dir=subpath(input.summary, parent=True),
        model_dir=subpath(output[0], parent=True),
        replica=lambda w: int(w.replica),
    script:
        "../scripts/train_model.py"


rule prepare_baseline:
    """A zero-shot baseline (config baselines): the universal potential's shipped checkpoint,
    its per-element energy shift fitted on the training frames; nothing trained."""
    input:
        train="results/{system}/split/train.extxyz",
        valid="results/{system}/split/valid.extxyz",
        summary="results/{system}/split/selection.json",
    output:
        "results/{system}/models/{backend}/model.json",
    log:
        "logs/prepare_baseline/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/prepare_baseline/{system}_{backend}.tsv"
    wildcard_constraints:
        backend="|".join(BASELINES) or "^$",
    conda:
        "../envs/{backend}.yaml"
    threads: 1
    params:
        backend_config=lambda w: canonical({}),
        gate=lambda w: canonical(qconfig.training_gate(config)),
        workdir=lambda w: f"results/{w.system}/training/{w.backend}",
        split_dir=subpath(input.summary, parent=True),
        model_dir=subpath(output[0], parent=True),
    script:
        "../scripts/train_model.py"
