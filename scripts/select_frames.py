from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.select_frames(
        cfg, snakemake.input.frames, Path(snakemake.output.summary).parent, descriptors=snakemake.input.descriptors
    ),
)
