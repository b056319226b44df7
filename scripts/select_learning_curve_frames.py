from pathlib import Path

from qdff import smk, stages

w = snakemake.wildcards
smk.run(
    snakemake,
    lambda cfg: stages.select_learning_curve_frames(
        cfg, w.method, int(w.n), snakemake.input.frames, snakemake.input.descriptors,
        Path(snakemake.output.summary).parent,
    ),
)
