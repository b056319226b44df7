rule compute_descriptors:
    """Per-frame descriptors (SOAP or distance histograms) of every frame, computed once."""
    input:
        "results/{system}/dataset/frames.extxyz",
    output:
        npy="results/{system}/selection/descriptors.npy",
        meta="results/{system}/selection/descriptors.json",
    log:
        "logs/compute_descriptors/{system}.log",
    benchmark:
        "results/benchmarks/compute_descriptors/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        descriptor=canonical(config["selection"]["descriptor"]),
    script:
        "../scripts/compute_descriptors.py"


rule select_frames:
    """Cut each run into time blocks (pool | gap | validation | gap | test), then select training frames."""
    input:
        frames="results/{system}/dataset/frames.extxyz",
        descriptors="results/{system}/selection/descriptors.npy",
    output:
        train="results/{system}/split/train.extxyz",
        valid="results/{system}/split/valid.extxyz",
        test="results/{system}/split/test.extxyz",
        summary="results/{system}/split/selection.json",
    log:
        "logs/select_frames/{system}.log",
    benchmark:
        "results/benchmarks/select_frames/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        # the map and the learning curve change no split: left out so they re-run nothing here
        selection=canonical({k: v for k, v in config["selection"].items() if k not in ("map", "learning_curve")}),
        reference_energies=canonical(config["reference_energies"]),
        test_runs=qconfig.test_runs(config),
        test_seed=config["aimd"]["test_seed"],
    script:
        "../scripts/select_frames.py"


rule map_configurations:
    """2-D map (t-SNE or PCA) of all frames: temperature, selected and held-out frames, basins."""
    input:
        descriptors="results/{system}/selection/descriptors.npy",
        summary="results/{system}/split/selection.json",
    output:
        png=report("results/{system}/selection/map.png", caption="../report/map.rst", category="Selection"),
        html="results/{system}/selection/map.html",
        info="results/{system}/selection/map.json",
    log:
        "logs/map_configurations/{system}.log",
    benchmark:
        "results/benchmarks/map_configurations/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        selection=canonical({k: config["selection"][k] for k in ("map", "dbscan", "seed")}),
    script:
        "../scripts/map_configurations.py"


# --- learning-curve experiment (selection.learning_curve.enabled) ---------------------------
# One job per (method, N) point, so that Snakemake runs points in parallel and resumes.


rule select_learning_curve_frames:
    """The split of one learning-curve point: N training frames chosen by one method."""
    input:
        frames="results/{system}/dataset/frames.extxyz",
        descriptors="results/{system}/selection/descriptors.npy",
    output:
        train="results/{system}/learning_curve/{method}/n{n}/split/train.extxyz",
        valid="results/{system}/learning_curve/{method}/n{n}/split/valid.extxyz",
        test="results/{system}/learning_curve/{method}/n{n}/split/test.extxyz",
        summary="results/{system}/learning_curve/{method}/n{n}/split/selection.json",
    log:
        "logs/select_learning_curve_frames/{system}_{method}_n{n}.log",
    benchmark:
        "results/benchmarks/select_learning_curve_frames/{system}_{method}_n{n}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        selection=canonical({k: v for k, v in config["selection"].items() if k not in ("map", "learning_curve")}),
        reference_energies=canonical(config["reference_energies"]),
        test_runs=qconfig.test_runs(config),
        test_seed=config["aimd"]["test_seed"],
    script:
        "../scripts/select_learning_curve_frames.py"


rule train_learning_curve_point:
    """Train the experiment's DeePMD model on one point's split and evaluate it on its validation frames
    (the test frames are left to the final models)."""
    input:
        train="results/{system}/learning_curve/{method}/n{n}/split/train.extxyz",
        valid="results/{system}/learning_curve/{method}/n{n}/split/valid.extxyz",
        summary="results/{system}/learning_curve/{method}/n{n}/split/selection.json",
    output:
        metrics="results/{system}/learning_curve/{method}/n{n}/metrics.json",
        model="results/{system}/learning_curve/{method}/n{n}/model/model.json",
    log:
        "logs/train_learning_curve_point/{system}_{method}_n{n}.log",
    benchmark:
        "results/benchmarks/train_learning_curve_point/{system}_{method}_n{n}.tsv"
    conda:
        "../envs/deepmd.yaml"
    threads: config["backends"]["deepmd"]["threads"]
    resources:
        mem_mb=config["backends"]["deepmd"]["mem_mb"],
        runtime=config["backends"]["deepmd"]["runtime_min"],
        gpu=1,
    params:
        deepmd=canonical(qconfig.hyperparameters(lc_deepmd_params())),
        evaluation=canonical(config["evaluation"]),
        workdir=lambda w: f"results/{w.system}/learning_curve/{w.method}/n{w.n}/training",
        split_dir=subpath(input.summary, parent=True),
        model_dir=subpath(output.model, parent=True),
    script:
        "../scripts/train_learning_curve_point.py"


rule plot_learning_curve:
    """Error against training-set size per method; frames each method needs to match random."""
    input:
        learning_curve_points,
    output:
        csv=report(
            "results/{system}/learning_curve/learning_curve.csv",
            caption="../report/learning_curve.rst",
            category="Selection",
        ),
        png=report(
            "results/{system}/learning_curve/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Selection",
        ),
        summary="results/{system}/learning_curve/summary.json",
    log:
        "logs/plot_learning_curve/{system}.log",
    benchmark:
        "results/benchmarks/plot_learning_curve/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_learning_curve.py"
