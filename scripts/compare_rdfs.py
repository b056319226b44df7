from qdff import smk
from qdff.steps import mlmd

smk.run(
    snakemake,
    mlmd.compare_rdfs,
    snakemake.wildcards.backend,
    snakemake.input.data,
    snakemake.input.trajectory,
    snakemake.input.summary,
    snakemake.output.json,
    snakemake.output.png,
)
