from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.relax_structure(cfg, snakemake.input[0], snakemake.params.workdir, snakemake.output[0]))
