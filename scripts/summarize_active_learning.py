from qdff import smk
from qdff.active_learning import loop

smk.run(
    snakemake,
    lambda cfg: loop.summarize(
        cfg, snakemake.input.explore, snakemake.input.labels, snakemake.input.evaluation, snakemake.input.train,
        snakemake.input.aimd, snakemake.output.summary, snakemake.output.plot,
        seed_explore=snakemake.input.get("seed_explore"), seed_labels=snakemake.input.get("seed_labels"),
    ),
)
