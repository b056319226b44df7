from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.write_cp2k_input(cfg, snakemake.input[0], snakemake.params.temperature, snakemake.output[0]))
