from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.run_mlmd(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, snakemake.input.test,
        snakemake.params.temperature, snakemake.output.trajectory, snakemake.output.summary,
        data=snakemake.input.data,
    ),
)
