from pathlib import Path

from qdff import smk
from qdff.steps import vibrations

smk.run(
    snakemake,
    vibrations.compute_vdos,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    Path(snakemake.input.aimd).parent,
    snakemake.output.summary,
    snakemake.output.plot,
)
