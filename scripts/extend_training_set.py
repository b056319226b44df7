from qdff import smk
from qdff.active_learning import loop

smk.run(snakemake, lambda cfg: loop.extend_training_set(snakemake.input.previous, snakemake.input.labelled, snakemake.output[0]))
