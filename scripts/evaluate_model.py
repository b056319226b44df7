from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.evaluate_model(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, snakemake.input.test,
        snakemake.output.metrics, snakemake.output.parity, snakemake.output.errors,
        train_file=snakemake.input.train,
    ),
)
