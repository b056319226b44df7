from qdff import smk
from qdff.steps import select

smk.run(snakemake, lambda cfg: select.compute_descriptors(cfg, snakemake.input[0], snakemake.output.npy))
