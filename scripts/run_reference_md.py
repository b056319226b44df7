from qdff import smk
from qdff.steps import mlmd

smk.run(
    snakemake,
    mlmd.run_reference_md,
    snakemake.input.test,
    snakemake.output.trajectory,
    snakemake.output.summary,
    data=snakemake.input.data,
)
