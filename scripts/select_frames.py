from pathlib import Path

from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    lambda cfg: select.select_frames(
        cfg, snakemake.input.frames, Path(snakemake.output.summary).parent, descriptors=snakemake.input.descriptors
    ),
)
