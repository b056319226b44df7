from pathlib import Path

from qdff import smk
from qdff.steps import evaluate

# evaluate_model's step for model k of training.seeds: a parity plot, no error plot
smk.run(
    snakemake,
    evaluate.evaluate_model,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    snakemake.input.test,
    snakemake.output.metrics,
    snakemake.output.parity,
    train_file=snakemake.input.train,
)
