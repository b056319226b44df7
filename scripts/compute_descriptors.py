from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.compute_descriptors(cfg, snakemake.input[0], snakemake.output.npy))
