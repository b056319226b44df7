# the independent test runs (aimd.test_seed) change nothing in the training runs
AIMD_PHYSICS = canonical({k: v for k, v in config["aimd"].items() if k != "test_seed"})


rule write_cp2k_input:
    """The CP2K MD input of one temperature (preset + overrides, via cp2k-input-tools)."""
    input:
        starting_structure,
    output:
        "results/{system}/aimd/{T}/md.inp",
    log:
        "logs/write_cp2k_input/{system}_{T}.log",
    benchmark:
        "results/benchmarks/write_cp2k_input/{system}_{T}.tsv"
    conda:
        "../envs/cp2k.yaml"
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        aimd=AIMD_PHYSICS,
        launch=CP2K_LAUNCH,
    script:
        "../scripts/write_cp2k_input.py"


rule run_aimd:
    """CP2K NVT MD at one temperature; a killed run resumes from CP2K's restart file.

    Only run.json is declared: CP2K's trajectory and restart files live beside it and
    are never deleted by Snakemake when a job fails, so finished steps are kept.
    """
    input:
        structure=starting_structure,
        cp2k_input="results/{system}/aimd/{T}/md.inp",
    output:
        "results/{system}/aimd/{T}/run.json",
    log:
        "logs/run_aimd/{system}_{T}.log",
    benchmark:
        "results/benchmarks/run_aimd/{system}_{T}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        workdir=subpath(input.cp2k_input, parent=True),
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        aimd=AIMD_PHYSICS,
        launch=CP2K_LAUNCH,
    script:
        "../scripts/run_aimd.py"


rule run_test_aimd:
    """The independent test run at one temperature (aimd.test_seed): as run_aimd, another seed."""
    input:
        structure=starting_structure,
    output:
        "results/{system}/aimd_test/{T}/run.json",
    log:
        "logs/run_test_aimd/{system}_{T}.log",
    benchmark:
        "results/benchmarks/run_test_aimd/{system}_{T}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        seed=config["aimd"]["test_seed"],
        workdir=subpath(output[0], parent=True),
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        aimd=canonical({k: v for k, v in config["aimd"].items() if k not in ("seed", "test_seed")}),
        launch=CP2K_LAUNCH,
    script:
        "../scripts/run_aimd.py"
