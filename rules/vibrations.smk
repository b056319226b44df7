# Beyond MD (config vibrations:, off by default): ML relaxation, normal modes of CP2K and of
# each model, VDOS of ML NVE against AIMD. Outputs under results/{system}/vibrations/.


rule compute_normal_modes_cp2k:
    """CP2K's reference: tight GEO_OPT, then VIBRATIONAL_ANALYSIS at the AIMD level of theory."""
    input:
        structure=starting_structure,
    output:
        modes="results/{system}/vibrations/cp2k/modes.json",
        minimum="results/{system}/vibrations/cp2k/minimum.extxyz",
    log:
        "logs/compute_normal_modes_cp2k/{system}.log",
    benchmark:
        "results/benchmarks/compute_normal_modes_cp2k/{system}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS | physics("cp2k", "relax_max_iter"),
        launch=CP2K_LAUNCH,
        vibrations=physics("vibrations", "cp2k_max_force", "cp2k_dx_bohr"),
    script:
        "../scripts/compute_normal_modes_cp2k.py"


rule compute_normal_modes_model:
    """One model's normal modes at CP2K's minimum (ase.vibrations) against CP2K's."""
    input:
        model="results/{system}/models/{backend}/model.json",
        minimum="results/{system}/vibrations/cp2k/minimum.extxyz",
        reference="results/{system}/vibrations/cp2k/modes.json",
    output:
        modes="results/{system}/vibrations/{backend}/modes.json",
    log:
        "logs/compute_normal_modes_model/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/compute_normal_modes_model/{system}_{backend}.tsv"
    conda:
        "../envs/{backend}.yaml"
    threads: 1
    params:
        vibrations=physics("vibrations", "delta_A", "imaginary_tol_cm1"),
    script:
        "../scripts/compute_normal_modes_model.py"


rule relax_with_model:
    """ML relaxations from CP2K's minimum and perturbed starts: RMSD, energy, bonds."""
    input:
        model="results/{system}/models/{backend}/model.json",
        minimum="results/{system}/vibrations/cp2k/minimum.extxyz",
    output:
        summary="results/{system}/vibrations/{backend}/relax.json",
        structures="results/{system}/vibrations/{backend}/relaxed.extxyz",
    log:
        "logs/relax_with_model/{system}_{backend}.log",
    benchmark:
        "results/benchmarks/relax_with_model/{system}_{backend}.tsv"
    conda:
        "../envs/{backend}.yaml"
    threads: 1
    params:
        vibrations=physics("vibrations", "relax_fmax", "relax_steps", "perturbations", "rattle_A", "rmsd_tol_A", "seed"),
    script:
        "../scripts/relax_with_model.py"


rule compute_vdos:
    """VDOS of ML NVE (from an AIMD frame and its CP2K velocities) against the AIMD's."""
    input:
        model="results/{system}/models/{backend}/model.json",
        aimd="results/{system}/aimd/{T}/run.json",
    output:
        summary="results/{system}/vibrations/{backend}/{T}/vdos.json",
        plot="results/{system}/vibrations/{backend}/{T}/vdos.png",
    log:
        "logs/compute_vdos/{system}_{backend}_{T}.log",
    benchmark:
        "results/benchmarks/compute_vdos/{system}_{backend}_{T}.tsv"
    conda:
        "../envs/{backend}.yaml"
    threads: 1
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        vibrations=physics("vibrations", "vdos_steps", "vdos_max_lag_fs"),
        timestep_fs=config["aimd"]["timestep_fs"],
        equilibration_fs=config["selection"]["equilibration_fs"],
    script:
        "../scripts/compute_vdos.py"


rule plot_normal_modes:
    """Stick spectra of CP2K's and every model's normal modes."""
    input:
        cp2k="results/{system}/vibrations/cp2k/modes.json",
        models=expand("results/{{system}}/vibrations/{backend}/modes.json", backend=BACKENDS),
    output:
        plot="results/{system}/vibrations/spectra.png",
    log:
        "logs/plot_normal_modes/{system}.log",
    benchmark:
        "results/benchmarks/plot_normal_modes/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_normal_modes.py"
