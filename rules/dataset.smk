rule convert_trajectory:
    """CP2K positions/forces/energies of every run -> one extxyz data set in eV and Angstrom."""
    input:
        aimd_summaries,
        test_aimd_summaries,
    output:
        frames="results/{system}/dataset/frames.extxyz",
        summary="results/{system}/dataset/conversion.json",
    log:
        "logs/convert_trajectory/{system}.log",
    benchmark:
        "results/benchmarks/convert_trajectory/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        # one per input, in input order: the training runs, then the independent test runs
        temperatures=list(TEMPERATURES.values()) * (1 + (config["aimd"]["test_seed"] is not None)),
        runs=list(TEMPERATURES) + qconfig.test_runs(config),
    script:
        "../scripts/convert_trajectory.py"
