from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.train_member(
        cfg, int(snakemake.wildcards.k), snakemake.input.train, snakemake.params.split_dir,
        snakemake.params.workdir, snakemake.params.model_dir,
    ),
)
