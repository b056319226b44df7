from pathlib import Path

from qdff import smk
from qdff.steps import vibrations

smk.run(
    snakemake,
    lambda cfg: vibrations.compute_vdos(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, Path(snakemake.input.aimd).parent,
        snakemake.params.temperature, snakemake.output.summary, snakemake.output.plot,
    ),
)
