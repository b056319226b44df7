from pathlib import Path

from qdff import smk
from qdff.steps import mlmd

smk.run(
    snakemake,
    mlmd.run_mlmd,
    snakemake.wildcards.backend,
    Path(snakemake.input.model).parent,
    snakemake.input.test,
    snakemake.output.trajectory,
    snakemake.output.summary,
    data=snakemake.input.data,
)
