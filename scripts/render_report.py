from qdff import smk
from qdff.steps import report

i = snakemake.input
smk.run(
    snakemake,
    report.render_report,
    i.aimd,
    i.selection,
    i.structure,
    i.metrics,
    i.parity,
    i.errors,
    i.rdf,
    i.mlmd,
    i.models,
    snakemake.output.html,
    snakemake.output.aimd_plot,
    al_summary=i.get("al_summary"),
    al_plot=i.get("al_plot"),
    al_calibration=i.get("al_calibration", []),
    vibrations={k: i.get(f"vib_{k}") for k in ("cp2k", "spectra", "modes", "relax", "vdos", "vdos_plots")}
    if i.get("vib_cp2k")
    else None,
)
