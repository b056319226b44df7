rule build_structure:
    """Build the QD from the config's builder, or import the user's file, into a vacuum box;
    structure.json: composition, diameter, net formal charge, surface atoms, passivants."""
    output:
        structure="results/{system}/structure.extxyz",
        summary="results/{system}/structure.json",
    log:
        "logs/build_structure/{system}.log",
    benchmark:
        "results/benchmarks/build_structure/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        structure=canonical(config["structure"]),
    script:
        "../scripts/build_structure.py"


rule relax_structure:
    """CP2K geometry optimisation at the AIMD level of theory (an unrelaxed cut is a poor MD start)."""
    input:
        "results/{system}/structure.extxyz",
    output:
        "results/{system}/relax/relaxed.extxyz",
    log:
        "logs/relax_structure/{system}.log",
    benchmark:
        "results/benchmarks/relax_structure/{system}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        workdir=subpath(output[0], parent=True),
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS | physics("cp2k", "relax", "relax_max_iter"),
        launch=CP2K_LAUNCH,
    script:
        "../scripts/relax_structure.py"
