from qdff import smk
from qdff.steps import structure

smk.run(snakemake, lambda cfg: structure.relax_structure(cfg, snakemake.input[0], snakemake.params.workdir, snakemake.output[0]))
