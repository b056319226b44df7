from pathlib import Path

from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.explore_with_baseline(
        cfg, Path(snakemake.input.model).parent, snakemake.input.train, snakemake.output.table,
        snakemake.output.candidates, snakemake.output.summary,
    ),
)
