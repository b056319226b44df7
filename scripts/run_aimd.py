from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.run_aimd(
        cfg, snakemake.input.structure, snakemake.params.temperature, snakemake.params.workdir, snakemake.output[0],
        seed=getattr(snakemake.params, "seed", None),
    ),
)
