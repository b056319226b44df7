from qdff import smk
from qdff.steps import evaluate

smk.run(
    snakemake,
    evaluate.collect_metrics,
    snakemake.input.metrics,
    snakemake.output.json,
    snakemake.output.csv,
    replica_files=snakemake.input.replicas,
    mlmd_files=snakemake.input.mlmd,
    rdf_files=snakemake.input.rdf,
    aimd_files=snakemake.input.aimd,
)
