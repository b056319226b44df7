from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.evaluate_committee,
    int(snakemake.wildcards.i),
    [Path(m).parent for m in snakemake.input.members],
    snakemake.input.test,
    snakemake.output.metrics,
    snakemake.output.calibration,
    snakemake.input.labels[0] if snakemake.input.labels else None,
)
