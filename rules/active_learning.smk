# Active learning (config block active_learning): committee training, exploration, CP2K
# labelling and a growing training set, one iteration per value of the {i} wildcard.
# Iteration i+1 depends on iteration i's files, so the loop is a plain DAG: resumable after a
# kill at any point, labelling on CPU partitions and committee trainings on GPU partitions.
# Whether to go on is known only after an exploration: a checkpoint.
# (its helpers, AL and al_*, are in rules/common.smk)


rule train_committee_member:
    """One committee member of iteration i: the backend's settings with the member's seed."""
    input:
        train=al_train_set,
        valid="results/{system}/split/valid.extxyz",
        summary="results/{system}/split/selection.json",
        init=al_warm_start_member,
    output:
        "results/{system}/al/iter{i}/committee/m{k}/model.json",
    log:
        "logs/train_committee_member/{system}_iter{i}_m{k}.log",
    benchmark:
        "results/benchmarks/train_committee_member/{system}_iter{i}_m{k}.tsv"
    conda:
        f"../envs/{AL_BACKEND}.yaml"
    threads: config["backends"][AL_BACKEND]["threads"]
    resources:
        mem_mb=config["backends"][AL_BACKEND]["mem_mb"],
        runtime=config["backends"][AL_BACKEND]["runtime_min"],
        gpu=1,
    params:
        backend=AL_BACKEND,
        backend_config=canonical(qconfig.hyperparameters(config["backends"][AL_BACKEND])),
        committee=physics("active_learning", "subsample", "steps_scale", "warm_start"),
        n_train_reference=config["selection"]["n_train"],
        gate=canonical(qconfig.training_gate(config)),
        workdir=lambda w: f"results/{w.system}/al/iter{w.i}/training/m{w.k}",
        split_dir=subpath(input.summary, parent=True),
        model_dir=subpath(output[0], parent=True),
    script:
        "../scripts/train_committee_member.py"


checkpoint explore_committee:
    """ML-MD with member 0 at the AIMD and stress temperatures; the committee scores every
    recorded frame; candidates in the trust window are picked for CP2K."""
    input:
        members=al_members,
        train=al_train_set,
        calibration=al_calibration_set,
        previous=al_previous_explore,
        aimd=aimd_summaries,
        labels=al_labels_before,
    output:
        table="results/{system}/al/iter{i}/explore/deviations.csv",
        candidates="results/{system}/al/iter{i}/explore/candidates.extxyz",
        summary="results/{system}/al/iter{i}/explore/explore.json",
    log:
        "logs/explore_committee/{system}_iter{i}.log",
    benchmark:
        "results/benchmarks/explore_committee/{system}_iter{i}.tsv"
    conda:
        f"../envs/{AL_BACKEND}.yaml"
    threads: 1
    resources:
        runtime=120,
    params:
        active_learning=al_explore_settings,
        mlmd=MLMD_PROTOCOL,
        descriptor=canonical(config["selection"]["descriptor"]),
        aimd_temperatures=config["aimd"]["temperatures"],
    script:
        "../scripts/explore_committee.py"


rule explore_with_baseline:
    """The seed exploration (active_learning.explore_with): ML-MD with a zero-shot universal
    potential; frames picked by farthest point sampling for CP2K before iteration 0."""
    input:
        model=f"results/{{system}}/models/{AL_EXPLORE_ENV}/model.json",
        train="results/{system}/split/train.extxyz",
    output:
        table="results/{system}/al/seed/explore/frames.csv",
        candidates="results/{system}/al/seed/explore/candidates.extxyz",
        summary="results/{system}/al/seed/explore/explore.json",
    log:
        "logs/explore_with_baseline/{system}.log",
    benchmark:
        "results/benchmarks/explore_with_baseline/{system}.tsv"
    conda:
        f"../envs/{AL_EXPLORE_ENV}.yaml"
    threads: 1
    resources:
        runtime=120,
    params:
        # it runs before iteration 0: how many iterations follow is none of its business
        active_learning=canonical({k: v for k, v in AL.items() if k != "max_iterations"}),
        mlmd=MLMD_PROTOCOL,
        descriptor=canonical(config["selection"]["descriptor"]),
        aimd_temperatures=config["aimd"]["temperatures"],
    script:
        "../scripts/explore_with_baseline.py"


rule label_seed_candidates:
    """CP2K energies and forces of the seed exploration's picked frames (restartable)."""
    input:
        candidates="results/{system}/al/seed/explore/candidates.extxyz",
    output:
        frames="results/{system}/al/seed/labels/labelled.extxyz",
        summary="results/{system}/al/seed/labels/labels.json",
    log:
        "logs/label_seed_candidates/{system}.log",
    benchmark:
        "results/benchmarks/label_seed_candidates/{system}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        workdir=lambda w: f"results/{w.system}/al/seed/labels/cp2k",
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        launch=CP2K_LAUNCH,
        seed=config["aimd"]["seed"],
    script:
        "../scripts/label_candidates.py"


rule label_candidates:
    """CP2K energies and forces of the picked candidates, in one restartable job."""
    input:
        candidates="results/{system}/al/iter{i}/explore/candidates.extxyz",
    output:
        frames="results/{system}/al/iter{i}/labels/labelled.extxyz",
        summary="results/{system}/al/iter{i}/labels/labels.json",
    log:
        "logs/label_candidates/{system}_iter{i}.log",
    benchmark:
        "results/benchmarks/label_candidates/{system}_iter{i}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: config["cp2k"]["threads"]
    resources:
        mem_mb=config["cp2k"]["mem_mb"],
        runtime=config["cp2k"]["runtime_min"],
    params:
        workdir=lambda w: f"results/{w.system}/al/iter{w.i}/labels/cp2k",
        structure=CHARGE_STATE,
        cp2k=CP2K_PHYSICS,
        launch=CP2K_LAUNCH,
        seed=config["aimd"]["seed"],
    script:
        "../scripts/label_candidates.py"


rule extend_training_set:
    """The training and calibration sets of iteration i: those of i-1 and the frames CP2K
    labelled in i-1, holdout_fraction of them held back for calibration (of iteration 0: the
    split's and the seed exploration's)."""
    input:
        previous=al_previous_train,
        previous_calibration=al_previous_calibration,
        labelled=al_previous_labels,
    output:
        train="results/{system}/al/iter{i}/train.extxyz",
        calibration="results/{system}/al/iter{i}/calibration.extxyz",
    log:
        "logs/extend_training_set/{system}_iter{i}.log",
    benchmark:
        "results/benchmarks/extend_training_set/{system}_iter{i}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        holdout_fraction=AL["holdout_fraction"],
    script:
        "../scripts/extend_training_set.py"


rule evaluate_committee:
    """Member 0 on the held-out frames, and whether the committee's deviation ranks its errors."""
    input:
        members=al_members,
        test="results/{system}/split/test.extxyz",
        # whether member 0 learnt the labels it trained on (none before iteration 1)
        labels=al_labels_to_have_learnt,
    output:
        metrics="results/{system}/al/iter{i}/evaluation.json",
        calibration=report(
            "results/{system}/al/iter{i}/calibration.png",
            caption="../report/al_calibration.rst",
            category="Active learning",
        ),
    log:
        "logs/evaluate_committee/{system}_iter{i}.log",
    benchmark:
        "results/benchmarks/evaluate_committee/{system}_iter{i}.tsv"
    conda:
        f"../envs/{AL_BACKEND}.yaml"
    params:
        max_frames=config["evaluation"]["max_frames"],
        holdout_fraction=AL["holdout_fraction"],
    script:
        "../scripts/evaluate_committee.py"


rule summarize_active_learning:
    """Per iteration: CP2K labels, explored fractions, held-out errors, stability; a plot."""
    input:
        **(
            {
                "seed_explore": "results/{system}/al/seed/explore/explore.json",
                "seed_labels": "results/{system}/al/seed/labels/labels.json",
            }
            if AL_SEED
            else {}
        ),
        explore=al_iteration_files("results/{system}/al/iter{i}/explore/explore.json"),
        evaluation=al_iteration_files("results/{system}/al/iter{i}/evaluation.json"),
        train=al_train_files,
        labels=al_label_files,
        aimd=aimd_summaries,
    output:
        summary="results/{system}/al/summary.json",
        plot=report("results/{system}/al/progress.png", caption="../report/al_progress.rst", category="Active learning"),
    log:
        "logs/summarize_active_learning/{system}.log",
    benchmark:
        "results/benchmarks/summarize_active_learning/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        active_learning=physics("active_learning", "backend", "committee", "trust_levels", "subsample"),
    script:
        "../scripts/summarize_active_learning.py"


rule export_active_learning_model:
    """The final committee's member 0 becomes the system's model of the committee's backend."""
    input:
        member=lambda w: f"results/{w.system}/al/iter{al_final_iteration(w.system)}/committee/m0/model.json",
        summary="results/{system}/al/summary.json",
    output:
        f"results/{{system}}/models/{AL_BACKEND}/model.json",
    log:
        "logs/export_active_learning_model/{system}.log",
    benchmark:
        "results/benchmarks/export_active_learning_model/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/export_active_learning_model.py"


ruleorder: export_active_learning_model > train_model


rule export_active_learning_replica:
    """Model k of training.seeds of the committee's backend: the final committee's member k, trained
    on the same set as member 0 with the seed of model k (qdff.training.with_seed)."""
    input:
        member=lambda w: f"results/{w.system}/al/iter{al_final_iteration(w.system)}/committee/m{w.replica}/model.json",
        summary="results/{system}/al/summary.json",
    output:
        f"results/{{system}}/models/{AL_BACKEND}/replicas/{{replica}}/model.json",
    log:
        "logs/export_active_learning_replica/{system}_{replica}.log",
    benchmark:
        "results/benchmarks/export_active_learning_replica/{system}_{replica}.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/export_active_learning_model.py"


ruleorder: export_active_learning_replica > train_model_replica
