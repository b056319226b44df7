from pathlib import Path

from qdff import smk
from qdff.steps import vibrations

smk.run(
    snakemake,
    vibrations.compute_normal_modes_model,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    snakemake.input.minimum,
    snakemake.input.reference,
    snakemake.output.modes,
    Path(snakemake.output.modes).parent / "fd_cache",
)
