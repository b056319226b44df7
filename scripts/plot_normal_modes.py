from qdff import smk, stages

smk.run(snakemake, lambda cfg: stages.plot_spectra(snakemake.input.cp2k, snakemake.input.models, snakemake.output.plot))
