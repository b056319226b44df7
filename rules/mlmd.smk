# ML-MD with each model and its pair-distance distributions against the AIMD's.


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
    log:
        "logs/run_mlmd/{system}_{backend}_{T}.log",
    benchmark:
        "results/benchmarks/run_mlmd/{system}_{backend}_{T}.tsv"
    conda:
        # the model is loaded in its backend's environment
        "../envs/{backend}.yaml"
    threads: 1
    resources:
        runtime=60,
    params:
        temperature=lambda w: MLMD_TEMPERATURES[w.T],
        # a temperature above these is a stress temperature, started from the hottest AIMD run
        aimd_temperatures=config["aimd"]["temperatures"],
        mlmd=canonical(config["mlmd"]),
        equilibration_fs=config["selection"]["equilibration_fs"],
    script:
        "../scripts/run_mlmd.py"


rule compare_rdfs:
    """Element-pair distance distributions (unit area) of one model's ML-MD against the AIMD frames at the same temperature, in blocks of equal frame count."""
    input:
        data="results/{system}/dataset/frames.extxyz",
        trajectory="results/{system}/mlmd/{backend}/{T}/trajectory.extxyz",
        summary="results/{system}/mlmd/{backend}/{T}/summary.json",
    output:
        json="results/{system}/validation/{backend}/{T}/rdf.json",
        png=report(
            "results/{system}/validation/{backend}/{T}/rdf.png",
            caption="../report/rdf.rst",
            category="Validation",
            subcategory="{backend}",
        ),
    log:
        "logs/compare_rdfs/{system}_{backend}_{T}.log",
    benchmark:
        "results/benchmarks/compare_rdfs/{system}_{backend}_{T}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        evaluation=physics("evaluation", "rdf_r_max", "rdf_bins"),
        equilibration_fs=config["selection"]["equilibration_fs"],
    script:
        "../scripts/compare_rdfs.py"
