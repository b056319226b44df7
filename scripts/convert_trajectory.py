from pathlib import Path

from qdff import smk
from qdff.steps import dataset

smk.run(
    snakemake,
    lambda cfg: dataset.convert_trajectories(
        [Path(s).parent for s in snakemake.input], snakemake.output.frames,
        temperatures=snakemake.params.temperatures, summary=snakemake.output.summary, runs=snakemake.params.runs,
    ),
)
