rule select_frames:
    """Hold out the final time block of each run, then select training/validation frames."""
    input:
        "results/{system}/dataset/frames.extxyz",
    output:
        train="results/{system}/split/train.extxyz",
        valid="results/{system}/split/valid.extxyz",
        test="results/{system}/split/test.extxyz",
        summary="results/{system}/split/selection.json",
    params:
        selection=canonical(config["selection"]),
        reference_energies=canonical(config["reference_energies"]),
    log:
        "logs/select_frames/{system}.log",
    benchmark:
        "results/benchmarks/select_frames/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/select_frames.py"
