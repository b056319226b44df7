from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    lambda cfg: select.map_configurations(
        cfg, snakemake.input.descriptors, snakemake.input.summary, snakemake.output.png, snakemake.output.html,
        snakemake.output.info,
    ),
)
