from qdff import smk
from qdff.steps import aimd

smk.run(
    snakemake,
    lambda cfg: aimd.run_aimd(
        cfg, snakemake.input.structure, snakemake.params.temperature, snakemake.params.workdir, snakemake.output[0],
        seed=getattr(snakemake.params, "seed", None),
    ),
)
