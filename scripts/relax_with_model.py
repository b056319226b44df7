from pathlib import Path

from qdff import smk
from qdff.steps import vibrations

smk.run(
    snakemake,
    vibrations.relax_with_model,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    snakemake.input.minimum,
    snakemake.output.summary,
    snakemake.output.structures,
)
