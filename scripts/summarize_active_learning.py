from qdff import smk
from qdff.steps import active_learning

i = snakemake.input
smk.run(
    snakemake,
    active_learning.summarize_active_learning,
    i.explore,
    i.labels,
    i.evaluation,
    i.train,
    i.aimd,
    snakemake.output.summary,
    snakemake.output.plot,
    seed_explore=i.get("seed_explore"),
    seed_labels=i.get("seed_labels"),
)
