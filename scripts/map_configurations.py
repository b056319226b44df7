from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    select.map_configurations,
    snakemake.input.descriptors,
    snakemake.input.summary,
    snakemake.output.png,
    snakemake.output.html,
    snakemake.output.info,
)
