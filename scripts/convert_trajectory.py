from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.convert_trajectories(
        [Path(s).parent for s in snakemake.input], snakemake.output.frames,
        temperatures=snakemake.params.temperatures, summary=snakemake.output.summary, runs=snakemake.params.runs,
    ),
)
