from qdff import smk
from qdff.steps import structure

smk.run(snakemake, structure.relax_structure, snakemake.input[0], snakemake.output[0])
