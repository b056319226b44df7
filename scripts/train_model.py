from qdff import smk
from qdff.steps import train

smk.run(snakemake, train.train_model, snakemake.wildcards.backend, threads=snakemake.threads)
