from qdff import smk
from qdff.steps import select

w = snakemake.wildcards
smk.run(
    snakemake,
    lambda cfg: select.train_learning_curve_point(
        cfg, w.method, int(w.n), snakemake.params.split_dir, snakemake.params.workdir, snakemake.params.model_dir,
        snakemake.output.metrics,
    ),
)
