from qdff import smk
from qdff.steps import select

smk.run(
    snakemake,
    select.train_learning_curve_point,
    snakemake.wildcards.method,
    int(snakemake.wildcards.n),
    snakemake.output.metrics,
    threads=snakemake.threads,
)
