from qdff import smk
from qdff.steps import structure

smk.run(snakemake, structure.build_structure, snakemake.output.structure, snakemake.output.summary)
