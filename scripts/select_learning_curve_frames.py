from pathlib import Path

from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    select.select_learning_curve_frames,
    snakemake.wildcards.method,
    int(snakemake.wildcards.n),
    snakemake.input.frames,
    snakemake.input.descriptors,
    Path(snakemake.output.summary).parent,
)
