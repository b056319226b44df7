from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.compute_vdos(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, Path(snakemake.input.aimd).parent,
        snakemake.params.temperature, snakemake.output.summary, snakemake.output.plot,
    ),
)
