from pathlib import Path

from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.explore(
        cfg, int(snakemake.wildcards.i), [Path(m).parent for m in snakemake.input.members], snakemake.input.train,
        snakemake.output.table, snakemake.output.candidates, snakemake.output.summary,
    ),
)
