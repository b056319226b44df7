from pathlib import Path

from qdff import smk
from qdff.steps import dataset

smk.run(
    snakemake,
    dataset.convert_trajectory,
    [Path(s).parent for s in snakemake.input],
    snakemake.output.frames,
    snakemake.output.summary,
)
