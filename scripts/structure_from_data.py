from qdff import smk
from qdff.steps import structure

smk.run(
    snakemake,
    structure.structure_from_data,
    snakemake.input[0],
    snakemake.output.structure,
    snakemake.output.summary,
)
