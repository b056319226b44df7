from qdff import smk
from qdff.steps import report

smk.run(snakemake, lambda cfg: report.render_index("results", snakemake.output[0]))
