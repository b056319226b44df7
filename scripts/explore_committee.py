from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.explore_committee,
    int(snakemake.wildcards.i),
    [Path(m).parent for m in snakemake.input.members],
    snakemake.input.train,
    snakemake.output.table,
    snakemake.output.candidates,
    snakemake.output.summary,
)
