from qdff import smk
from qdff.steps import train

smk.run(
    snakemake,
    lambda cfg: train.train_model(
        cfg, snakemake.wildcards.backend, snakemake.params.split_dir, snakemake.params.workdir, snakemake.params.model_dir
    ),
)
