from qdff import smk
from qdff.steps import active_learning

smk.run(
    snakemake,
    active_learning.train_committee_member,
    int(snakemake.wildcards.k),
    snakemake.input.train,
    threads=snakemake.threads,
)
