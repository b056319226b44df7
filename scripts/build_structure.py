from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.build_structure(cfg, snakemake.output.structure, snakemake.output.summary))
