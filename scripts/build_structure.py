from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.build_structure(cfg, snakemake.output[0]))
