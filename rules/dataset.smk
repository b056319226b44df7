rule convert_trajectory:
    """CP2K positions/forces/energies of every run -> one extxyz data set in eV and Angstrom."""
    input:
        aimd_summaries,
    output:
        frames="results/{system}/dataset/frames.extxyz",
        summary="results/{system}/dataset/conversion.json",
    params:
        temperatures=list(TEMPERATURES.values()),
    log:
        "logs/convert_trajectory/{system}.log",
    benchmark:
        "results/benchmarks/convert_trajectory/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/convert_trajectory.py"
