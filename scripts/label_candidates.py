from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.label(
        cfg, snakemake.input.candidates, snakemake.params.workdir, snakemake.output.frames, snakemake.output.summary
    ),
)
