from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.explore_with_baseline,
    Path(snakemake.input.model).parent,
    snakemake.input.train,
    snakemake.output.table,
    snakemake.output.candidates,
    snakemake.output.summary,
)
