from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.label_candidates,
    snakemake.input.candidates,
    snakemake.output.frames,
    snakemake.output.summary,
)
