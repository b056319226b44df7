from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

init = snakemake.input.init  # the same member of the previous iteration (warm start), or none
smk.run(
    snakemake,
    active_learning.train_committee_member,
    int(snakemake.wildcards.k),
    snakemake.input.train,
    Path(init[0]).parent if init else None,
    threads=snakemake.threads,
)
