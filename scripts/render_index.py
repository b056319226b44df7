from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.render_index("results", snakemake.output[0]))
