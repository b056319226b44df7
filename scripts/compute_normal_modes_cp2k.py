from pathlib import Path

from qdff import smk
from qdff.steps import vibrations

smk.run(
    snakemake,
    vibrations.compute_normal_modes_cp2k,
    snakemake.input.structure,
    Path(snakemake.output.modes).parent / "run",
    snakemake.output.modes,
    snakemake.output.minimum,
)
