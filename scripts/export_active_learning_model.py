from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.export_active_learning_model,
    Path(snakemake.input.member).parent,
    Path(snakemake.output[0]).parent,
)
