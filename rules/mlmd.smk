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
    wildcard_constraints:
        backend="|".join(BACKENDS) or "^$",
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
        mlmd=MLMD_PROTOCOL,
        equilibration_fs=config["selection"]["equilibration_fs"],
    script:
        "../scripts/run_mlmd.py"


rule run_reference_md:
    """The reference as a model (the null test of every ML-MD verdict): CP2K's own MD under run_mlmd's protocol, judged by the same checks."""
    input:
        test="results/{system}/split/test.extxyz",
        data="results/{system}/dataset/frames.extxyz",
    output:
        trajectory="results/{system}/mlmd/reference/{T}/trajectory.extxyz",
        summary="results/{system}/mlmd/reference/{T}/summary.json",
    log:
        "logs/run_reference_md/{system}_{T}.log",
    benchmark:
        "results/benchmarks/run_reference_md/{system}_{T}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        temperature=lambda w: MLMD_TEMPERATURES[w.T],
        aimd_temperatures=config["aimd"]["temperatures"],
        mlmd=MLMD_PROTOCOL,
        equilibration_fs=config["selection"]["equilibration_fs"],
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        launch=CP2K_LAUNCH,
        # each seed's CP2K files and summary: a killed job resumes at the first seed not done
        workdir=lambda w: f"results/{w.system}/mlmd/reference/{w.T}/cp2k",
    script:
        "../scripts/run_reference_md.py"


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
