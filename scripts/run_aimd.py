from qdff import smk
from qdff.steps import aimd

smk.run(snakemake, aimd.run_aimd, snakemake.input.structure, snakemake.output[0])
