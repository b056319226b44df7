from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.extend_training_set,
    snakemake.input.previous,
    snakemake.input.previous_calibration,
    snakemake.input.labelled,
    snakemake.output.train,
    snakemake.output.calibration,
)
