rule render_report:
    """One self-contained HTML page per system comparing the backends."""
    input:
        # the active-learning section, when the loop is on (rules/active_learning.smk)
        **(
            {
                "al_summary": "results/{system}/al/summary.json",
                "al_plot": "results/{system}/al/progress.png",
                "al_calibration": lambda w: al_iteration_files("results/{system}/al/iter{i}/calibration.png")(w),
            }
            if config["active_learning"]["enabled"]
            else {}
        ),
        # the vibrations section, when its rules are on (rules/vibrations.smk)
        **(
            {
                "vib_cp2k": "results/{system}/vibrations/cp2k/modes.json",
                "vib_spectra": "results/{system}/vibrations/spectra.png",
                "vib_modes": expand("results/{{system}}/vibrations/{backend}/modes.json", backend=BACKENDS),
                "vib_relax": expand("results/{{system}}/vibrations/{backend}/relax.json", backend=BACKENDS),
                "vib_vdos": [f"results/{{system}}/vibrations/{b}/{t}/vdos.json" for b, t in MLMD_KEYS],
                "vib_vdos_plots": [f"results/{{system}}/vibrations/{b}/{t}/vdos.png" for b, t in MLMD_KEYS],
            }
            if config["vibrations"]["enabled"]
            else {}
        ),
        aimd=aimd_summaries,
        structure="results/{system}/structure.json",
        selection="results/{system}/split/selection.json",
        metrics="results/{system}/evaluation/metrics.json",
        parity=expand("results/{{system}}/evaluation/{backend}/parity.png", backend=BACKENDS),
        errors=expand("results/{{system}}/evaluation/{backend}/errors.png", backend=BACKENDS),
        rdf=rdf_plots,
        # the data of the interactive figures, beside the PNGs
        predictions=expand("results/{{system}}/evaluation/{backend}/predictions.json", backend=BACKENDS),
        rdf_json=rdf_results,
        mlmd=lambda w: (
            [f"results/{w.system}/mlmd/{b}/{t}/summary.json" for b, t in RDF_KEYS] if config["mlmd"]["enabled"] else []
        ),
        # the map and, when switched on, the learning curve (shown in the selection section)
        selection_extra=lambda w: selection_targets(w.system)
        + ([f"results/{w.system}/selection/map.json"] if config["selection"]["map"]["enabled"] else []),
        models=expand("results/{{system}}/models/{backend}/model.json", backend=BACKENDS),
    output:
        html=report("results/{system}/report.html", caption="../report/report.rst", category="Report"),
        aimd_plot="results/{system}/report/aimd.png",
    log:
        "logs/render_report/{system}.log",
    benchmark:
        "results/benchmarks/render_report/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        # what the report states of the config (cp2k's launch settings and resources are not
        # among it: changing them re-renders nothing)
        config=canonical(
            {
                "name": config["name"],
                "description": config["description"],
                "cp2k": {"preset": config["cp2k"]["preset"]},
                # imported data: their level of theory labels the report; without a trajectory, the
                # AIMD-ensemble checks are skipped and the report says so
                "data": {
                    "source": config["data"]["source"],
                    "level_of_theory": config["data"]["level_of_theory"],
                    "trajectory": TRAJECTORY,
                },
                "mlmd": physics(
                    "mlmd",
                    "bond_cutoff_factor",
                    "thermostat",
                    "thermostat_timecon_fs",
                    "seeds",
                    "bond_break_fs",
                    "bond_check",
                    "bond_criterion",
                ),
                "vibrations": physics("vibrations", "delta_A", "perturbations", "rattle_A", "relax_fmax"),
            }
        ),
        backends=BACKENDS,
        rdf_keys=lambda w: [[b, t] for b, t in RDF_KEYS] if config["mlmd"]["enabled"] else [],
        vib_keys=[[b, t] for b, t in MLMD_KEYS],
    script:
        "../scripts/render_report.py"


rule render_index:
    """results/index.html linking the report of every system under results/."""
    input:
        f"results/{SYSTEM}/report.html",
    output:
        "results/index.html",
    log:
        "logs/render_index.log",
    benchmark:
        "results/benchmarks/render_index.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/render_index.py"
