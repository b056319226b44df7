from pathlib import Path

from qdff import smk
from qdff.steps import mlmd

smk.run(
    snakemake,
    lambda cfg: mlmd.run_mlmd(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, snakemake.input.test,
        snakemake.params.temperature, snakemake.output.trajectory, snakemake.output.summary,
        data=snakemake.input.data,
    ),
)
