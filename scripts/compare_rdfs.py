from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.compare_rdfs(
        cfg, snakemake.wildcards.backend, snakemake.input.data, snakemake.input.trajectory, snakemake.input.summary,
        snakemake.params.temperature, snakemake.output.json, snakemake.output.png,
    ),
)
