from pathlib import Path

from qdff import smk
from qdff.steps import evaluate

smk.run(
    snakemake,
    lambda cfg: evaluate.evaluate_model(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, snakemake.input.test,
        snakemake.output.metrics, snakemake.output.parity, snakemake.output.errors,
        train_file=snakemake.input.train,
    ),
)
