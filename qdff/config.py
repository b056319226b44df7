"""Configuration: load a YAML file, fill defaults and validate against the schema.

The schema (qdff/schemas/config.schema.yaml) is the single documentation of every key.
Errors name the key path, the problem and the allowed values, and suggest the nearest
known key for a misspelling, before any job starts.
"""

from __future__ import annotations

import copy
import difflib
import logging
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"

log = logging.getLogger(__name__)

#: shortest ``selection.gap_fs`` (fs) accepted without ``selection.allow_short_gap``. Measured on
#: the demo's GFN1-xTB AIMD of Cd6Se6 (results/cdse-demo/dataset/frames.extxyz, frames every 2 fs,
#: the 701 frames after the 100 fs equilibration of each run): the force autocorrelation
#: (all atoms and components, each time-averaged force removed) first falls below 0.1 at 42 fs (300 K) and
#: 40 fs (600 K), but that is a zero crossing of an oscillation, not decorrelation: it swings to
#: -0.42 / -0.50 at 74 / 76 fs and comes back to a maximum at 132 fs (300 K) and 144 fs (600 K),
#: one period of the Cd-Se vibration (force spectrum peaks 285 and 214 cm^-1: 117 and 156 fs).
#: A gap of 150 fs is at least one full period at both temperatures, so a held-out frame does not
#: sit in the same oscillation as a frame of the neighbouring block. It is a floor, not
#: decorrelation: beyond 150 fs |C| still reaches 0.31 (300 K) and 0.26 (600 K) within the run,
#: hence the default of 500 fs (docs/backends.md, "Held-out split").
MIN_GAP_FS = 150.0


class ConfigError(ValueError):
    pass


# keys that were renamed or whose meaning changed: the unknown-key error says what replaces them
RENAMED = {
    "selection.gap_frames": "selection.gap_fs (the gap is MD time in fs now: frames x aimd.print_every x "
    "aimd.timestep_fs)",
    "backends.deepmd.start_pref_e": "backends.deepmd.start_energy_weight (per-atom energy, as in every backend)",
    "backends.deepmd.limit_pref_e": "backends.deepmd.energy_weight (per-atom energy, as in every backend)",
    "backends.deepmd.start_pref_f": "backends.deepmd.start_forces_weight",
    "backends.deepmd.limit_pref_f": "backends.deepmd.forces_weight",
}


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _fill_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft7Validator)


def _path(error) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error) -> str:
    path = _path(error)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        parts = []
        for key in extra:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            renamed = RENAMED.get(f"{path}.{key}" if path != "(top level)" else key)
            if renamed:
                hint = f" (renamed: use {renamed})"
            parts.append(f"unknown key {key!r}{hint}")
        where = f"{path}." if path != "(top level)" else ""
        return f"config error at {where}{extra[0] if extra else ''}: {'; '.join(parts)}; known keys here: {', '.join(known)}"
    if error.validator == "enum":
        return f"config error at {path}: {error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "oneOf":
        desc = error.schema.get("description", "")
        return f"config error at {path}: {error.instance!r} is not valid. {desc}"
    return f"config error at {path}: {error.message}"


def validate(config: dict) -> dict:
    """Validate ``config`` in place (filling defaults) and return it; raise :class:`ConfigError`."""
    from .training.backends import presets  # light: no backend package is imported

    # what the user wrote, before defaults fill it: imported data decide some of these themselves
    given = {
        "structure": "structure" in config,
        "cp2k": "cp2k" in config,
        "aimd.temperatures": "temperatures" in (config.get("aimd") or {}),
        "mlmd.stress_temperatures": (config.get("mlmd") or {}).get("stress_temperatures") is not None,
    }
    presets.apply(config)  # production settings under the keys the config sets
    schema = load_schema()
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        msgs = [_message(e) for e in errors]
        raise ConfigError("\n".join(dict.fromkeys(msgs)))
    # cross-field checks the schema cannot express
    s = config["structure"]
    if not given["structure"] and config["data"]["source"] == "aimd":
        raise ConfigError(
            "config error at structure: required (the QD that qdff relaxes and runs AIMD of); only a config "
            "importing its data (data.source cp2k or extxyz) may leave it out: the structure then comes from the data"
        )
    if not given["structure"]:
        s["source"] = "data"
    if s["source"] == "data" and config["data"]["source"] == "aimd":
        raise ConfigError(
            "config error at structure.source: 'data' takes the first frame of imported data; data.source is "
            "'aimd' (nothing is imported): use build or file"
        )
    if s["source"] == "file" and not s.get("file"):
        raise ConfigError("config error at structure.file: required when structure.source is 'file'")
    if s["source"] == "build":
        from .structure.build import StructureError, check_builder  # ASE only when needed

        try:
            check_builder(s["material"], s["builder"])
        except StructureError as exc:
            raise ConfigError(f"config error at {exc}") from None
    _check_data(config["data"])
    if imported(config):
        _derive_from_data(config, given)
    if len(set(config["aimd"]["temperatures"])) != len(config["aimd"]["temperatures"]):
        raise ConfigError("config error at aimd.temperatures: temperatures must be distinct")
    if not enabled_backends(config):
        raise ConfigError("config error at backends: no backend is enabled")
    sel = config["selection"]
    if config["aimd"]["test_seed"] is None and sel["test_fraction"] + sel["valid_fraction"] >= 1:
        raise ConfigError(
            f"config error at selection.valid_fraction: test_fraction {sel['test_fraction']} + "
            f"valid_fraction {sel['valid_fraction']} leave no time for the training pool"
        )
    if sel["gap_fs"] < MIN_GAP_FS:
        why = (
            f"selection.gap_fs {sel['gap_fs']:g} fs is shorter than {MIN_GAP_FS:g} fs, one period of the Cd-Se "
            "vibration (the force autocorrelation of the demo's AIMD returns to a maximum after 132 fs at 300 K "
            "and 144 fs at 600 K): held-out frames that close to the training or validation block are correlated "
            "with it and their errors are optimistic"
        )
        if not sel["allow_short_gap"]:
            raise ConfigError(
                f"config error at selection.gap_fs: {why}; raise it (default 500), or set "
                "selection.allow_short_gap: true to accept that"
            )
        log.warning("%s (accepted: selection.allow_short_gap is true)", why)
    if config["aimd"]["test_seed"] == config["aimd"]["seed"]:
        raise ConfigError(
            f"config error at aimd.test_seed: {config['aimd']['test_seed']} is aimd.seed; an "
            "independent test run needs another seed"
        )
    # derived default: the ML-MD thermostat takes the AIMD's time constant (like with like)
    if config["mlmd"]["thermostat_timecon_fs"] is None:
        config["mlmd"]["thermostat_timecon_fs"] = config["aimd"]["thermostat_timecon_fs"]
    low = [t for t in config["mlmd"]["stress_temperatures"] or [] if t <= max(config["aimd"]["temperatures"])]
    if low:
        raise ConfigError(
            f"config error at mlmd.stress_temperatures: {low} not above the highest AIMD temperature "
            f"{max(config['aimd']['temperatures'])} K (AIMD temperatures get ML-MD anyway)"
        )
    al = config["active_learning"]
    if al["enabled"]:
        if al["backend"] not in enabled_backends(config):
            raise ConfigError(
                f"config error at active_learning.backend: {al['backend']!r} is not enabled "
                f"(backends.{al['backend']}.enabled)"
            )
        if al["warm_start"] and al["backend"] != "deepmd":
            raise ConfigError(
                f"config error at active_learning.warm_start: supported for a deepmd committee, not {al['backend']!r}"
            )
        if al["trust_levels"] == "fixed" and not al["trust_lo"] < al["trust_hi"]:
            raise ConfigError(
                f"config error at active_learning.trust_hi: {al['trust_hi']} must be above trust_lo {al['trust_lo']}"
            )
        if al["explore_with"] != "none" and al["explore_with"] not in config["baselines"]:
            raise ConfigError(
                f"config error at active_learning.explore_with: {al['explore_with']!r} is not in "
                f"baselines {config['baselines']} (the seed exploration uses that baseline's model)"
            )
        if config["training"]["seeds"] > al["committee"]:
            raise ConfigError(
                f"config error at training.seeds: {config['training']['seeds']} models of {al['backend']} asked for, "
                f"but with active learning its models are the final committee's {al['committee']} members "
                "(active_learning.committee)"
            )
    return config


#: data.* keys that describe an extxyz file; CP2K's own files have known keys and units
_EXTXYZ_ONLY = ("energy_key", "forces_key", "energy_unit", "forces_unit", "trajectory", "timestep_fs")


def _check_data(data: dict) -> None:
    """Cross-field checks of the ``data`` block: what an import needs, and no key that the
    chosen source would silently ignore."""
    if data["source"] == "aimd":
        if data["paths"]:
            raise ConfigError(
                "config error at data.paths: set, but data.source is 'aimd' (qdff runs the AIMD itself); "
                "set data.source to cp2k or extxyz to import these paths"
            )
        return
    if not data["paths"]:
        raise ConfigError(f"config error at data.paths: required when data.source is {data['source']!r}")
    if len(set(data["paths"])) != len(data["paths"]):
        raise ConfigError("config error at data.paths: a path is listed twice")
    if not (data["level_of_theory"] or "").strip():
        raise ConfigError(
            f"config error at data.level_of_theory: required when data.source is {data['source']!r} "
            "(e.g. 'PBE-D3/DZVP-MOLOPT-SR-GTH'): imported energies and forces carry no record of how they "
            "were computed, and models trained on them are only comparable at the same level"
        )
    if data["source"] == "cp2k":
        defaults = load_schema()["properties"]["data"]["properties"]
        for key in _EXTXYZ_ONLY:
            if data[key] != defaults[key]["default"]:
                raise ConfigError(
                    f"config error at data.{key}: applies to source 'extxyz' only; CP2K's output "
                    "files have known keys and units (Hartree, Hartree/Bohr) and carry step and time"
                )


def imported(config: dict) -> bool:
    """Whether the training data are imported (data.source cp2k or extxyz) instead of qdff's AIMD."""
    return config["data"]["source"] != "aimd"


def _derive_from_data(config: dict, given: dict) -> None:
    """What the pipeline needs to know of imported data before any job runs, from a cheap scan
    of the files (:func:`qdff.data.imports.scan`: extxyz header lines, a CP2K input's
    TEMPERATURE), and the checks that need no AIMD of qdff's own.

    Temperatures: the DAG has one ML-MD run (and pair-distance comparison) per temperature of
    the data, so the set must be known when Snakemake builds the DAG, before the import job
    runs. Asking the user to repeat them (aimd.temperatures) would let the list and the frames
    disagree; reading them from the files at config-load time cannot, and costs a read of the
    header lines (a 3000-frame extxyz of 149 atoms: well under a second). They are written into
    aimd.temperatures, which every rule already reads as "the temperatures of the training
    data". Frames whose file carries no temperature take data.temperature; where neither says,
    the config check stops, naming the file and frame.

    Whether the data are a trajectory (every path, or none: a mixture is refused) decides the
    checks that compare with an AIMD ensemble: without one there are no stress temperatures,
    no reference MD (mlmd.reference) and no pair-distance comparison (:func:`data_trajectory`)."""
    from .data.imports import DataImportError, scan

    data = config["data"]
    if config["aimd"]["test_seed"] is not None:
        raise ConfigError(
            "config error at aimd.test_seed: an independent AIMD test run is qdff's own AIMD; with imported "
            "data the test set comes from the data (selection.split)"
        )
    try:
        scanned = scan(data)
    except DataImportError as exc:
        raise ConfigError(f"config error at data.paths: {exc}") from None
    for sc in scanned:
        if sc["unknown_temperature"]:
            raise ConfigError(
                f"config error at data.temperature: {sc['path']}: {sc['unknown_temperature']} carries no "
                "temperature; the pipeline runs ML-MD and compares at the data's temperatures, so they must be "
                "known: set data.temperature (K, for frames without one) or write `temperature=` in the headers"
            )
    temperatures = sorted({t for sc in scanned for t in sc["temperatures"]})
    if given["aimd.temperatures"] and sorted(map(float, config["aimd"]["temperatures"])) != temperatures:
        raise ConfigError(
            f"config error at aimd.temperatures: {config['aimd']['temperatures']}, but the imported data are at "
            f"{temperatures} K; with imported data leave aimd.temperatures out (it is read from the data)"
        )
    config["aimd"]["temperatures"] = temperatures
    kinds = {sc["trajectory"] for sc in scanned}
    if len(kinds) > 1:
        which = [sc["path"] for sc in scanned if not sc["trajectory"]]
        raise ConfigError(
            f"config error at data.trajectory: some paths are trajectories and some are not ({', '.join(which)}); "
            "a data set mixing the two is not supported yet: import them as separate systems, or set "
            "data.trajectory for all"
        )
    trajectory = kinds.pop()
    sel = config["selection"]
    if sel["split"] == "time" and not trajectory:
        raise ConfigError(
            "config error at selection.split: 'time' needs MD time, and the imported frames are not a "
            "trajectory (data.trajectory); use auto, file or clusters"
        )
    if sel["split"] == "file" and len(data["paths"]) < 3:
        raise ConfigError(
            f"config error at selection.split: 'file' holds whole source files out for test and validation and "
            f"needs 3 or more data.paths (there are {len(data['paths'])}); use clusters"
        )
    if not trajectory:
        if given["mlmd.stress_temperatures"] and config["mlmd"]["stress_temperatures"]:
            raise ConfigError(
                "config error at mlmd.stress_temperatures: a stress run starts from the hottest AIMD run and is "
                "judged against it; the imported frames are not a trajectory (data.trajectory)"
            )
        config["mlmd"]["stress_temperatures"] = []  # none: see the docstring
        if config["mlmd"]["reference"] is True:
            raise ConfigError(
                "config error at mlmd.reference: the reference MD is judged like a model against the data's "
                "trajectory, and the imported frames are not one (data.trajectory); set it to false"
            )
    # Labelling (active learning), the reference MD and CP2K's normal modes need CP2K at the
    # data's level of theory: the presets are qdff's own levels, so an imported data set says
    # nothing about which CP2K settings reproduce its numbers; a `cp2k:` block must say it.
    if not given["cp2k"]:
        need = [
            key
            for key, on in (
                ("active_learning.enabled", config["active_learning"]["enabled"]),
                ("mlmd.reference", config["mlmd"]["reference"] is True),
            )
            if on
        ]
        if need:
            raise ConfigError(
                f"config error at {need[0]}: {' and '.join(need)} need CP2K at the imported data's level of theory "
                f"(data.level_of_theory {data['level_of_theory']!r}); give a cp2k: block (preset, overrides) that "
                "computes it, or switch them off"
            )
        if config["mlmd"]["reference"] == "auto":
            config["mlmd"]["reference"] = False  # auto means on for the xtb preset, not a level of the data
    if config["vibrations"]["enabled"]:
        raise ConfigError(
            "config error at vibrations.enabled: not supported with imported data yet (the VDOS comparison needs "
            "the AIMD's velocities from qdff's own CP2K runs); switch it off"
        )


def data_trajectory(config: dict) -> bool:
    """Whether the training data are a trajectory (qdff's AIMD always is; imported data where
    data.trajectory, or its auto rule, says so): the checks against an AIMD ensemble (pair
    distances, stress temperatures, the reference MD) run only then."""
    if not imported(config):
        return True
    from .data.imports import scan

    return all(sc["trajectory"] for sc in scan(config["data"]))


def load(path) -> dict:
    path = Path(path)
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return validate(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def enabled_backends(config: dict) -> list[str]:
    return [name for name, sub in config.get("backends", {}).items() if sub.get("enabled", True)]


def reference_md(config: dict) -> bool:
    """Whether the reference (CP2K's own MD under the ML-MD protocol) runs as a model:
    ``mlmd.reference``, where auto means on for the cheap xtb preset."""
    ref = config["mlmd"].get("reference", "auto")
    if ref == "auto":
        ref = config["cp2k"]["preset"] == "xtb"
    return bool(ref) and bool(config["mlmd"]["enabled"])


#: keys of a backend's block that ask the scheduler for resources and do not change the model
RESOURCE_KEYS = ("threads", "mem_mb", "runtime_min")


def hyperparameters(block: dict) -> dict:
    """A backend's config block (``backends.<name>``) without its :data:`RESOURCE_KEYS`: what
    a trained model depends on (its fingerprint, a rule's params), in the block's order."""
    return {k: v for k, v in block.items() if k not in RESOURCE_KEYS}


def training_gate(config: dict) -> dict:
    """The usefulness thresholds every trained model must pass (config ``training``) without
    ``seeds``: how many models are trained per backend is no rerun trigger of the first one."""
    return {k: v for k, v in config["training"].items() if k != "seeds"}


def temperature_label(t: float) -> str:
    """Directory label of a temperature: 300 -> '300K', 300.5 -> '300.5K'."""
    return f"{t:g}K"


def test_run_label(t: float) -> str:
    """Run label of the independent test AIMD at ``t`` (aimd.test_seed): '300K-test'."""
    return f"{temperature_label(t)}-test"


def test_runs(config: dict) -> list[str]:
    """Run labels of the independent test AIMD runs; empty unless aimd.test_seed is set."""
    if config["aimd"].get("test_seed") is None:
        return []
    return [test_run_label(t) for t in config["aimd"]["temperatures"]]


def mlmd_temperatures(config: dict) -> dict[float, bool]:
    """Every ML-MD temperature (K), True for the stress temperatures: above the AIMD ones,
    by default mlmd.stress_factor x the highest (where no AIMD shows what to expect)."""
    aimd = [float(t) for t in config["aimd"]["temperatures"]]
    p = config["mlmd"]
    stress = p["stress_temperatures"]
    if stress is None:
        stress = [round(p["stress_factor"] * max(aimd), 1)] if p["stress_factor"] > 1 else []
    out = {t: False for t in aimd}
    out.update({float(t): True for t in stress if float(t) not in out})
    return dict(sorted(out.items()))


def describe(schema: dict | None = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key path, default, description) for every key, for the README's configuration table."""
    schema = schema or load_schema()
    rows = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = sub.get("default", "(required)" if key in schema.get("required", []) else "")
        if "properties" in sub:
            rows.append((path, "", sub.get("description", "")))
            rows.extend(describe(sub, path + "."))
        else:
            rows.append(
                (
                    path,
                    yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip(),
                    sub.get("description", ""),
                )
            )
    return rows
