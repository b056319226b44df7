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
    params:
        evaluation=canonical(config["evaluation"]),
        material=config["structure"]["material"],
    log:
        "logs/evaluate_model/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{system}_{backend}.tsv"
    conda:
        # the model is loaded in its backend's environment
        "../envs/{backend}.yaml"
    script:
        "../scripts/evaluate_model.py"


rule run_mlmd:
    """Langevin ML-MD with one model at one AIMD or stress temperature, mlmd.seeds runs: stable or not, and why."""
    input:
        model="results/{system}/models/{backend}/model.json",
        test="results/{system}/split/test.extxyz",
        # the AIMD at that temperature: limits, bond cutoffs and its own bond changes
        data="results/{system}/dataset/frames.extxyz",
    output:
        trajectory="results/{system}/mlmd/{backend}/{T}/trajectory.extxyz",
        summary="results/{system}/mlmd/{backend}/{T}/summary.json",
    params:
        temperature=lambda w: MLMD_TEMPERATURES[w.T],
        mlmd=canonical(config["mlmd"]),
        equilibration_fs=config["selection"]["equilibration_fs"],
    log:
        "logs/run_mlmd/{system}_{backend}_{T}.log",
    benchmark:
        "results/benchmarks/run_mlmd/{system}_{backend}_{T}.tsv"
    threads: 1
    resources:
        runtime=60,
    conda:
        # the model is loaded in its backend's environment
        "../envs/{backend}.yaml"
    script:
        "../scripts/run_mlmd.py"


rule collect_metrics:
    """One metrics table across backends (errors, stability, pair-distance overlap, speed), as JSON and CSV."""
    input:
        metrics=expand("results/{{system}}/evaluation/{backend}/metrics.json", backend=BACKENDS),
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
