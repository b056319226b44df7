# Helpers shared by all rules: config validation at start-up, names derived from it.
import qdff.config as qconfig
import qdff.data.imports as qdata
from qdff.smk import Launch
from snakemake.logging import logger

# Validate at start-up (fills defaults): a misspelt key stops the run here, naming its path.
try:
    qconfig.validate(config)
except qconfig.ConfigError as exc:
    raise WorkflowError(str(exc)) from None


# DeePMD-kit's LAMMPS plugin is built by `make setup` (tools/deepmd_lammps_plugin.py) against the
# venv's own DeePMD-kit build; envs/deepmd.yaml has neither, so under --sdm conda the LAMMPS
# engine could only fail in the first ML-MD job: refused here, before any work.
def _refuse_lammps_under_conda():
    from snakemake_interface_executor_plugins.settings import DeploymentMethod
    from qdff.validation.mlmd import LAMMPS_BACKENDS

    explored = [config["active_learning"]["backend"]] if config["active_learning"]["enabled"] else []
    lammps_backends = [b for b in qconfig.enabled_backends(config) + explored if b in LAMMPS_BACKENDS]
    if (
        config["mlmd"]["engine"] == "lammps"
        and lammps_backends
        and DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    ):
        raise WorkflowError(
            "config error at mlmd.engine: 'lammps' needs the DeePMD-kit LAMMPS plugin that `make setup` builds "
            "into .venv; the conda environment envs/deepmd.yaml has no LAMMPS. Run without --sdm conda "
            "(in the project's venv) or set mlmd.engine: ase."
        )


_refuse_lammps_under_conda()

SYSTEM = config["name"]
# imported data (data.source cp2k or extxyz): rules/import.smk makes the data set, no AIMD runs;
# the temperatures below are then the data's (read at config-load time: qdff.config._derive_from_data)
IMPORTED = qconfig.imported(config)
# whether the training data are a trajectory (qdff's AIMD always; imported data where data.trajectory
# says so): the comparisons with an AIMD ensemble (pair distances) run only then
TRAJECTORY = qconfig.data_trajectory(config)
if not TRAJECTORY:
    logger.warning(
        "qdff: the imported frames are no trajectory (data.trajectory): no pair-distance comparison with the "
        "data, no stress temperatures, no reference MD; the held-out split is by source file or by clusters "
        "(selection.split); the report says so"
    )
TEMPERATURES = {qconfig.temperature_label(t): t for t in config["aimd"]["temperatures"]}
# the trained backends, then the zero-shot baselines (universal potentials, not trained):
# every evaluation rule runs over BACKENDS, so the baselines are judged exactly as the models
TRAINED_BACKENDS = qconfig.enabled_backends(config)
BASELINES = list(config["baselines"])
BACKENDS = TRAINED_BACKENDS + BASELINES
# the reference as a model (mlmd.reference): CP2K's own MD through the ML-MD protocol and the
# structural comparisons, beside the models (no held-out errors, no vibrations: it is the reference)
REFERENCE = ["reference"] if qconfig.reference_md(config) else []
# the models run in ML-MD: every trained backend, and the baselines unless mlmd.baselines is false
MLMD_BACKENDS = TRAINED_BACKENDS + (BASELINES if config["mlmd"]["baselines"] else [])
# models 1..training.seeds-1 of every trained backend (model 0 is models/{backend}/): their
# held-out errors give the spread over seeds in the metrics table; baselines have none
REPLICAS = list(range(1, config["training"]["seeds"]))


wildcard_constraints:
    system=SYSTEM,
    T=r"[0-9.]+K",
    backend="|".join(BACKENDS + REFERENCE),
    # models 1.. of training.seeds (model 0 is models/{backend}/ itself)
    replica=r"[1-9][0-9]*",


def replica_metrics(wildcards):
    return [
        f"results/{wildcards.system}/evaluation/{b}/replicas/{k}/metrics.json"
        for b in TRAINED_BACKENDS
        for k in REPLICAS
    ]


def aimd_summaries(wildcards):
    """qdff's AIMD runs, one per temperature; none with imported data."""
    if IMPORTED:
        return []
    return expand("results/{system}/aimd/{T}/run.json", system=wildcards.system, T=TEMPERATURES)


def test_aimd_summaries(wildcards):
    """The independent test runs (aimd.test_seed), one per temperature; none by default."""
    if IMPORTED or config["aimd"]["test_seed"] is None:
        return []
    return expand("results/{system}/aimd_test/{T}/run.json", system=wildcards.system, T=TEMPERATURES)


def starting_structure(wildcards):
    """The structure CP2K starts from: relaxed for qdff's AIMD; with imported data the
    structure as it is (the data's first frame, or the given structure), never relaxed."""
    if IMPORTED:
        return f"results/{wildcards.system}/structure.extxyz"
    return f"results/{wildcards.system}/relax/relaxed.extxyz"


def canonical(value):
    """``value`` with every mapping's keys sorted: Snakemake compares params by their
    serialised form, so the order of keys in a YAML file must not trigger a re-run."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def physics(section, *keys):
    """The config values that change a rule's results; resources and launch commands
    are left out, so that changing e.g. cp2k.mem_mb re-runs nothing."""
    return canonical({k: config[section][k] for k in keys})


CP2K_PHYSICS = physics("cp2k", "preset", "overrides")
# the ML-MD protocol every run follows (switching the reference or the baselines' ML-MD on or off re-runs no model)
MLMD_PROTOCOL = canonical({k: v for k, v in config["mlmd"].items() if k not in ("reference", "baselines")})
# how CP2K runs (command, threads, memory, on_failure, check_memory): passed to the CP2K steps,
# but no rerun trigger (qdff.smk.Launch)
CP2K_LAUNCH = Launch(
    {k: v for k, v in config["cp2k"].items() if k not in ("preset", "overrides", "relax", "relax_max_iter")}
)
# the charge state every CP2K input is written for
CHARGE_STATE = physics("structure", "charge", "multiplicity")


# ML-MD temperatures: the AIMD ones and the stress temperatures above them (mlmd.stress_*)
MLMD_TEMPERATURES = {qconfig.temperature_label(t): t for t in qconfig.mlmd_temperatures(config)}


def mlmd_summaries(wildcards):
    if not config["mlmd"]["enabled"]:
        return []
    return expand(
        "results/{system}/mlmd/{backend}/{T}/summary.json",
        system=wildcards.system,
        backend=MLMD_BACKENDS + REFERENCE,
        T=MLMD_TEMPERATURES,
    )


# (backend, AIMD temperature label) of every ML-MD run compared with AIMD, in one fixed order for inputs and params
MLMD_KEYS = [(b, t) for b in BACKENDS for t in TEMPERATURES]
# and those compared with AIMD by their structure alone (pair distances): the models' and the reference's
# (none where the data are no trajectory: a curated set is no ensemble to compare distributions with)
RDF_KEYS = [(b, t) for b in MLMD_BACKENDS + REFERENCE for t in TEMPERATURES] if TRAJECTORY else []


def rdf_results(wildcards):
    if not config["mlmd"]["enabled"]:
        return []
    return [f"results/{wildcards.system}/validation/{b}/{t}/rdf.json" for b, t in RDF_KEYS]


def rdf_plots(wildcards):
    if not config["mlmd"]["enabled"]:
        return []
    return [f"results/{wildcards.system}/validation/{b}/{t}/rdf.png" for b, t in RDF_KEYS]


wildcard_constraints:
    method="random|stride|fps|kmeans|dbscan",
    n=r"[0-9]+",


def lc_deepmd_params():
    import qdff.selection.learning_curve as qlc

    return qlc.deepmd_params(config)


def learning_curve_points(wildcards):
    lc = config["selection"]["learning_curve"]
    return expand(
        "results/{system}/learning_curve/{method}/n{n}/metrics.json",
        system=wildcards.system,
        method=lc["methods"],
        n=lc["sizes"],
    )


def selection_targets(system):
    """The map and, when switched on, the learning curve: for `rule all`."""
    sel = config["selection"]
    out = []
    if sel["map"]["enabled"]:
        out += [f"results/{system}/selection/map.png", f"results/{system}/selection/map.html"]
    if sel["learning_curve"]["enabled"]:
        out += [
            f"results/{system}/learning_curve/{f}" for f in ("learning_curve.csv", "learning_curve.png", "summary.json")
        ]
    return out


# ---------------------------------------------------------------- vibrations (rules/vibrations.smk)


def vibration_targets(system):
    """The vibrations stage's end products: for `rule all`, when vibrations.enabled."""
    return (
        [f"results/{system}/vibrations/spectra.png"]
        + [f"results/{system}/vibrations/{b}/relax.json" for b in BACKENDS]
        + [f"results/{system}/vibrations/{b}/{t}/vdos.json" for b in BACKENDS for t in TEMPERATURES]
    )


# ---------------------------------------------------------------- active learning (rules/active_learning.smk)
# Iteration i+1 depends on iteration i's files, so the loop is a plain DAG; whether to go on is
# known only after an exploration (a checkpoint), which al_final_iteration reads.

AL = config["active_learning"]
AL_BACKEND = AL["backend"]


wildcard_constraints:
    i=r"[0-9]+",
    k=r"[0-9]+",


AL_SEED = AL["explore_with"] != "none"
# the environment of the seed exploration: the baseline's (unused when there is none)
AL_EXPLORE_ENV = AL["explore_with"] if AL_SEED else "analysis"


def al_train_file(system, i):
    """Iteration 0 trains on the selected AIMD frames of the common split (and, with
    explore_with, the seed exploration's CP2K labels)."""
    if int(i) == 0 and not AL_SEED:
        return f"results/{system}/split/train.extxyz"
    return f"results/{system}/al/iter{i}/train.extxyz"


def al_previous_train(wildcards):
    if int(wildcards.i) == 0:
        return f"results/{wildcards.system}/split/train.extxyz"
    return al_train_file(wildcards.system, int(wildcards.i) - 1)


def al_previous_labels(wildcards):
    if int(wildcards.i) == 0:
        return f"results/{wildcards.system}/al/seed/labels/labelled.extxyz"
    return f"results/{wildcards.system}/al/iter{int(wildcards.i) - 1}/labels/labelled.extxyz"


def al_train_set(wildcards):
    return al_train_file(wildcards.system, wildcards.i)


def al_calibration_file(system, i):
    """The committee's calibration frames (labelled, never trained on): the split's validation
    frames and the labels held back so far (active_learning.holdout_fraction)."""
    if int(i) == 0 and not AL_SEED:
        return f"results/{system}/split/valid.extxyz"
    return f"results/{system}/al/iter{i}/calibration.extxyz"


def al_calibration_set(wildcards):
    return al_calibration_file(wildcards.system, wildcards.i)


def al_previous_calibration(wildcards):
    if int(wildcards.i) == 0:
        return f"results/{wildcards.system}/split/valid.extxyz"
    return al_calibration_file(wildcards.system, int(wildcards.i) - 1)


def al_previous_explore(wildcards):
    """The previous iteration's explore.json (temperature ladder, adaptive level); none for 0."""
    i = int(wildcards.i)
    return [f"results/{wildcards.system}/al/iter{i - 1}/explore/explore.json"] if i > 0 else []


def al_labels_before(wildcards):
    """The labels' summaries of the seed exploration and of every iteration before i."""
    i = int(wildcards.i)
    seed = [f"results/{wildcards.system}/al/seed/labels/labels.json"] if AL_SEED else []
    return seed + [f"results/{wildcards.system}/al/iter{j}/labels/labels.json" for j in range(i)]


def al_explore_settings(wildcards):
    """active_learning as iteration i's exploration sees it: max_iterations matters to it only as
    whether i is the last (the stop rule), so raising it re-runs no earlier iteration."""
    return canonical({**AL, "max_iterations": min(AL["max_iterations"], int(wildcards.i) + 1)})


def al_labels_to_have_learnt(wildcards):
    """The labelled frames of iteration i-1 (whether member 0 of i learnt them); none for 0."""
    i = int(wildcards.i)
    return [] if i == 0 else [f"results/{wildcards.system}/al/iter{i - 1}/labels/labelled.extxyz"]


def al_warm_start_member(wildcards):
    """With active_learning.warm_start, member k of iteration i > 0 starts from member k of i-1."""
    i = int(wildcards.i)
    if not AL["warm_start"] or i == 0:
        return []
    return [f"results/{wildcards.system}/al/iter{i - 1}/committee/m{wildcards.k}/model.json"]


def al_members(wildcards):
    return [
        f"results/{wildcards.system}/al/iter{wildcards.i}/committee/m{k}/model.json" for k in range(AL["committee"])
    ]


def al_final_iteration(system):
    """The first iteration that converged, or the last one: each exploration's verdict is
    read once its checkpoint has run."""
    import json

    for i in range(AL["max_iterations"] + 1):
        summary = checkpoints.explore_committee.get(system=system, i=i).output.summary
        with open(summary) as fh:
            s = json.load(fh)
        if s["converged"] or s["last_iteration"]:
            return i
    return AL["max_iterations"]


def al_iteration_files(pattern):
    def files(wildcards):
        last = al_final_iteration(wildcards.system)
        return [pattern.format(system=wildcards.system, i=i) for i in range(last + 1)]

    return files


def al_train_files(wildcards):
    return [al_train_file(wildcards.system, i) for i in range(al_final_iteration(wildcards.system) + 1)]


def al_label_files(wildcards):
    last = al_final_iteration(wildcards.system)
    return [f"results/{wildcards.system}/al/iter{i}/labels/labels.json" for i in range(last)]
