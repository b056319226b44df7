from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.collect_metrics(snakemake.input, snakemake.output.json, snakemake.output.csv))
