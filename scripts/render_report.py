from pathlib import Path

from qdff import smk
from qdff.steps import report

smk.run(
    snakemake,
    lambda cfg: report.render_report(
        cfg,
        aimd_dirs=[Path(s).parent for s in snakemake.input.aimd],
        aimd_summaries=snakemake.input.aimd,
        selection_file=snakemake.input.selection,
        structure_file=snakemake.input.structure,
        metrics_file=snakemake.input.metrics,
        parity_plots=dict(zip(snakemake.params.backends, snakemake.input.parity)),
        error_plots=dict(zip(snakemake.params.backends, snakemake.input.errors)),
        rdf_plots=[(b, t, p) for (b, t), p in zip(snakemake.params.rdf_keys, snakemake.input.rdf)],
        mlmd_summaries=[(b, t, p) for (b, t), p in zip(snakemake.params.rdf_keys, snakemake.input.mlmd)],
        model_dirs={b: Path(m).parent for b, m in zip(snakemake.params.backends, snakemake.input.models)},
        aimd_plot=snakemake.output.aimd_plot,
        al_summary=snakemake.input.get("al_summary"),
        al_plot=snakemake.input.get("al_plot"),
        al_calibration=snakemake.input.get("al_calibration", []),
        vibrations={
            "cp2k": snakemake.input.vib_cp2k,
            "spectra": snakemake.input.vib_spectra,
            "modes": dict(zip(snakemake.params.backends, snakemake.input.vib_modes)),
            "relax": dict(zip(snakemake.params.backends, snakemake.input.vib_relax)),
            "vdos": [(b, t, p) for (b, t), p in zip(snakemake.params.vib_keys, snakemake.input.vib_vdos)],
            "vdos_plots": [(b, t, p) for (b, t), p in zip(snakemake.params.vib_keys, snakemake.input.vib_vdos_plots)],
        }
        if snakemake.input.get("vib_cp2k")
        else None,
        out=snakemake.output.html,
    ),
)
