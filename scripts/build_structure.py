from qdff import smk
from qdff.steps import structure

smk.run(snakemake, lambda cfg: structure.build_structure(cfg, snakemake.output.structure, snakemake.output.summary))
