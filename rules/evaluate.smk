rule evaluate_model:
    """Energy/force errors and parity plot of one model on the held-out frames."""
    input:
        model="results/{system}/models/{backend}/model.json",
        test="results/{system}/split/test.extxyz",
        # the training range, shaded in the parity plot
        train="results/{system}/split/train.extxyz",
    output:
        metrics="results/{system}/evaluation/{backend}/metrics.json",
        # energies and a sample of forces, for the report's interactive parity plot
        predictions="results/{system}/evaluation/{backend}/predictions.json",
        parity=report(
            "results/{system}/evaluation/{backend}/parity.png",
            caption="../report/parity.rst",
            category="Validation",
            subcategory="{backend}",
        ),
        errors=report(
            "results/{system}/evaluation/{backend}/errors.png",
            caption="../report/errors.rst",
            category="Validation",
            subcategory="{backend}",
        ),
    log:
        "logs/evaluate_model/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{system}_{backend}.tsv"
    conda:
        # the model is loaded in its backend's environment
        "../envs/{backend}.yaml"
    params:
        max_frames=config["evaluation"]["max_frames"],
        material=config["structure"]["material"],
    script:
        "../scripts/evaluate_model.py"


rule evaluate_model_replica:
    """evaluate_model for model k of training.seeds (rule train_model_replica): its errors on the
    same held-out frames, a parity plot beside them, nothing in the report but the spread."""
    input:
        model="results/{system}/models/{backend}/replicas/{replica}/model.json",
        test="results/{system}/split/test.extxyz",
        train="results/{system}/split/train.extxyz",
    output:
        metrics="results/{system}/evaluation/{backend}/replicas/{replica}/metrics.json",
        predictions="results/{system}/evaluation/{backend}/replicas/{replica}/predictions.json",
        parity="results/{system}/evaluation/{backend}/replicas/{replica}/parity.png",
    log:
        "logs/evaluate_model_replica/{system}_{backend}_{replica}.log",
    benchmark:
        "results/benchmarks/evaluate_model_replica/{system}_{backend}_{replica}.tsv"
    wildcard_constraints:
        backend="|".join(TRAINED_BACKENDS) or "^$",
    conda:
        "../envs/{backend}.yaml"
    params:
        max_frames=config["evaluation"]["max_frames"],
        material=config["structure"]["material"],
    script:
        "../scripts/evaluate_model_replica.py"


rule collect_metrics:
    """One metrics table across backends (errors, stability, pair-distance overlap, speed), as JSON and CSV."""
    input:
        metrics=expand("results/{{system}}/evaluation/{backend}/metrics.json", backend=BACKENDS),
        # models 1.. of training.seeds: the spread of the errors over seeds
        replicas=replica_metrics,
        mlmd=mlmd_summaries,
        rdf=rdf_results,
        aimd=aimd_summaries,
    output:
        json="results/{system}/evaluation/metrics.json",
        csv=report(
            "results/{system}/evaluation/metrics.csv",
            caption="../report/metrics.rst",
            category="Validation",
        ),
    log:
        "logs/collect_metrics/{system}.log",
    benchmark:
        "results/benchmarks/collect_metrics/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/collect_metrics.py"
