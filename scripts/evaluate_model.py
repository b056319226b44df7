from pathlib import Path

from qdff import smk
from qdff.steps import evaluate

smk.run(
    snakemake,
    evaluate.evaluate_model,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    snakemake.input.test,
    snakemake.output.metrics,
    snakemake.output.parity,
    snakemake.output.errors,
    train_file=snakemake.input.train,
)
