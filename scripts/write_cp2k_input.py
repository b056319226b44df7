from qdff import smk
from qdff.steps import aimd

smk.run(snakemake, aimd.write_cp2k_input, snakemake.input[0], snakemake.output[0])
