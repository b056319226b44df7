from pathlib import Path

from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.select_frames(cfg, snakemake.input[0], Path(snakemake.output.summary).parent))
