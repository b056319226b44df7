from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.collect_metrics(
        snakemake.input.metrics, snakemake.output.json, snakemake.output.csv, mlmd_files=snakemake.input.mlmd,
        rdf_files=snakemake.input.rdf, aimd_files=snakemake.input.aimd,
    ),
)
