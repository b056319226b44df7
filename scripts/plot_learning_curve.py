from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.plot_learning_curve(
        snakemake.input, snakemake.output.csv, snakemake.output.png, snakemake.output.summary
    ),
)
