from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    select.plot_learning_curve,
    snakemake.input,
    snakemake.output.csv,
    snakemake.output.png,
    snakemake.output.summary,
)
