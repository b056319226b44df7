rule render_report:
    """One self-contained HTML page per system comparing the backends."""
    input:
        aimd=aimd_summaries,
        structure="results/{system}/structure.json",
        selection="results/{system}/split/selection.json",
        metrics="results/{system}/evaluation/metrics.json",
        parity=expand("results/{{system}}/evaluation/{backend}/parity.png", backend=BACKENDS),
        errors=expand("results/{{system}}/evaluation/{backend}/errors.png", backend=BACKENDS),
        rdf=rdf_plots,
        # the map and, when switched on, the learning curve (shown in the selection section)
        selection_extra=lambda w: selection_targets(w.system)
        + ([f"results/{w.system}/selection/map.json"] if config["selection"]["map"]["enabled"] else []),
        models=expand("results/{{system}}/models/{backend}/model.json", backend=BACKENDS),
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
    output:
        html=report("results/{system}/report.html", caption="../report/report.rst", category="Report"),
        aimd_plot="results/{system}/report/aimd.png",
    params:
        backends=BACKENDS,
        rdf_keys=lambda w: [[b, t] for b, t in MLMD_KEYS] if config["mlmd"]["enabled"] else [],
    log:
        "logs/render_report/{system}.log",
    benchmark:
        "results/benchmarks/render_report/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
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
