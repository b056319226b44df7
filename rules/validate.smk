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
    params:
        temperature=lambda w: TEMPERATURES[w.T],
        evaluation=canonical(config["evaluation"]),
        equilibration_fs=config["selection"]["equilibration_fs"],
    log:
        "logs/compare_rdfs/{system}_{backend}_{T}.log",
    benchmark:
        "results/benchmarks/compare_rdfs/{system}_{backend}_{T}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/compare_rdfs.py"
