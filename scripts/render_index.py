from qdff import smk
from qdff.steps import report

smk.run(snakemake, report.render_index, snakemake.output[0])
