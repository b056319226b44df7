from qdff import smk
from qdff.steps import mlmd

smk.run(
    snakemake,
    lambda cfg: mlmd.compare_rdfs(
        cfg, snakemake.wildcards.backend, snakemake.input.data, snakemake.input.trajectory, snakemake.input.summary,
        snakemake.params.temperature, snakemake.output.json, snakemake.output.png,
    ),
)
