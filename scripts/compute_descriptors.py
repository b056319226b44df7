from qdff import smk
from qdff.steps import select

smk.run(snakemake, select.compute_descriptors, snakemake.input[0], snakemake.output.npy)
