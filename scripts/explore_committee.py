from pathlib import Path

from qdff import smk
from qdff.steps import active_learning

i = snakemake.input
smk.run(
    snakemake,
    active_learning.explore_committee,
    int(snakemake.wildcards.i),
    [Path(m).parent for m in i.members],
    i.train,
    i.calibration,
    snakemake.output.table,
    snakemake.output.candidates,
    snakemake.output.summary,
    previous_summary=i.previous[0] if i.previous else None,
    aimd_summaries=i.aimd,
    label_summaries=i.labels,
)
