from qdff import smk
from qdff.steps import dataset

smk.run(snakemake, dataset.import_data, snakemake.output.frames, snakemake.output.summary)
