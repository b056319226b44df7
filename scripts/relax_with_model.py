from pathlib import Path

from qdff import smk, stages

smk.run(
    snakemake,
    lambda cfg: stages.relax_with_model(
        cfg, snakemake.wildcards.backend, Path(snakemake.input.model).parent, snakemake.input.minimum,
        snakemake.output.summary, snakemake.output.structures,
    ),
)
