from pathlib import Path

from qdff import smk
from qdff.steps import select

w = snakemake.wildcards
smk.run(
    snakemake,
    lambda cfg: select.select_learning_curve_frames(
        cfg, w.method, int(w.n), snakemake.input.frames, snakemake.input.descriptors,
        Path(snakemake.output.summary).parent,
    ),
)
