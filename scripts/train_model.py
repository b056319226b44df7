from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.train_model(
        cfg, snakemake.wildcards.backend, snakemake.params.split_dir, snakemake.params.workdir, snakemake.params.model_dir
    ),
)
