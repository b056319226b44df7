from pathlib import Path

from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    select.select_frames,
    snakemake.input.frames,
    Path(snakemake.output.summary).parent,
    descriptors=snakemake.input.descriptors,
)
