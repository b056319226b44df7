from qdff import smk
from qdff.steps import vibrations

smk.run(snakemake, vibrations.plot_normal_modes, snakemake.input.cp2k, snakemake.input.models, snakemake.output.plot)
