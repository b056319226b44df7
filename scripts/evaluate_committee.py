from pathlib import Path

from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.evaluate_iteration(
        cfg, int(snakemake.wildcards.i), [Path(m).parent for m in snakemake.input.members], snakemake.input.test,
        snakemake.output.metrics, snakemake.output.calibration,
    ),
)
