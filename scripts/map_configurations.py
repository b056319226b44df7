from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.map_configurations(
        cfg, snakemake.input.descriptors, snakemake.input.summary, snakemake.output.png, snakemake.output.html,
        snakemake.output.info,
    ),
)
