from pathlib import Path

from qdff import smk
from qdff.active_learning import loop

smk.run(snakemake, lambda cfg: loop.export_model(Path(snakemake.input.member).parent, Path(snakemake.output[0]).parent))
