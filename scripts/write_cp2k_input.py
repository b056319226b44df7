from qdff import smk
from qdff.steps import aimd

smk.run(snakemake, lambda cfg: aimd.write_cp2k_input(cfg, snakemake.input[0], snakemake.params.temperature, snakemake.output[0]))
