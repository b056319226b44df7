"""The ``qdff`` command line: each pipeline stage without Snakemake."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, logs


def _cfg(path):
    from . import config

    return config.load(path)


def _cp2k(cfg: dict) -> dict:
    """The CP2K steps' keyword arguments, as rules/common.smk passes them (CHARGE_STATE,
    CP2K_PHYSICS, CP2K_LAUNCH): here the whole blocks, as the steps read only their keys."""
    return {"structure": cfg["structure"], "cp2k": cfg["cp2k"], "launch": cfg["cp2k"]}


def cmd_validate(a):
    cfg = _cfg(a.config)
    print(
        f"{a.config}: valid (system {cfg['name']}, backends {', '.join(__import__('qdff.config').config.enabled_backends(cfg))})"
    )


def cmd_config_docs(a):
    from .config import describe

    print("| key | default | description |\n|---|---|---|")
    for key, default, desc in describe():
        print(f"| `{key}` | {f'`{default}`' if default else ''} | {desc} |")


def cmd_build(a):
    import json

    from .steps import structure

    summary = structure.build_structure(a.output, a.summary, structure=_cfg(a.config)["structure"])
    print(json.dumps(summary, indent=2, sort_keys=True))


def cmd_cp2k_input(a):
    from .steps import aimd

    cfg = _cfg(a.config)
    aimd.write_cp2k_input(a.structure, a.output, temperature=a.temperature, aimd=cfg["aimd"], **_cp2k(cfg))


def cmd_relax(a):
    from .steps import structure

    structure.relax_structure(a.structure, a.output, workdir=a.workdir, **_cp2k(_cfg(a.config)))


def cmd_aimd(a):
    from .steps import aimd

    cfg = _cfg(a.config)
    aimd.run_aimd(
        a.structure,
        Path(a.workdir) / "run.json",
        temperature=a.temperature,
        workdir=a.workdir,
        aimd=cfg["aimd"],
        **_cp2k(cfg),
    )


def cmd_convert(a):
    from .cp2k.output import convert_runs

    temps = [a.temperature] * len(a.run_dir) if a.temperature is not None else None
    out = convert_runs(a.run_dir, a.output, temperatures=temps, allow_truncated=not a.strict)
    for s in out:
        print(f"{s['run']}: {s['frames']} frames (project {s['project']}, T={s['temperature']} K)")
    print(f"wrote {a.output}")


def cmd_import(a):
    from .data.imports import import_data

    cfg = _cfg(a.config)
    s = import_data(cfg["data"], a.output)
    for src in s["sources"]:
        comps = ", ".join(f"{c} x {n}" for c, n in src["compositions"].items())
        temps = ", ".join("unknown" if t == -1 else f"{t:g} K" for t in src["temperatures"])
        order = (
            f"time-ordered, {src['time_fs'][0]:g}..{src['time_fs'][1]:g} fs"
            if src["trajectory"]
            else "not a trajectory (no time order)"
        )
        dup = f", {src['duplicates_dropped']} duplicate(s) dropped" if src["duplicates_dropped"] else ""
        print(f"{src['run']} ({src['source']}): {src['frames']} frames of {comps}; T {temps}; {order}{dup}")
    comps = ", ".join(f"{c} x {n}" for c, n in s["compositions"].items())
    print(f"wrote {a.output}: {s['frames']} frames ({comps}), {s['level_of_theory']}")


def cmd_select(a):
    from .steps import select

    s = select.select_frames(a.data, a.output, **select.select_params(_cfg(a.config)))
    print(f"train {s['n_train']}, valid {s['n_valid']}, test {s['n_test']} -> {a.output}")


def cmd_train(a):
    from .steps import train

    print(
        train.train_model(
            a.backend,
            **train.train_params(_cfg(a.config), a.backend),
            workdir=a.workdir,
            split_dir=a.split,
            model_dir=a.output,
        )
    )


def cmd_evaluate(a):
    from .steps import evaluate

    cfg = _cfg(a.config)
    m = evaluate.evaluate_model(
        a.backend,
        a.model,
        a.test,
        a.output,
        a.parity,
        max_frames=cfg["evaluation"]["max_frames"],
        material=cfg["structure"]["material"],
    )
    print(f"force RMSE {m['force_rmse_meV_per_A']:.1f} meV/A, energy RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="qdff",
        description="CP2K AIMD of quantum dots -> ML force fields. "
        "The Snakemake workflow chains these stages; each can also be run alone.",
    )
    p.add_argument("--version", action="version", version=f"qdff {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate", help="check a config file against the schema")
    s.add_argument("config")
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("config-docs", help="print every config key with its default (Markdown)")
    s.set_defaults(fn=cmd_config_docs)

    s = sub.add_parser("build", help="build or import the structure of a config")
    s.add_argument("config")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--summary", help="also write the build summary (JSON) here")
    s.set_defaults(fn=cmd_build)

    s = sub.add_parser("cp2k-input", help="write the CP2K MD input for one temperature")
    s.add_argument("config")
    s.add_argument("structure")
    s.add_argument("-t", "--temperature", type=float, required=True)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_cp2k_input)

    s = sub.add_parser("relax", help="CP2K geometry optimisation")
    s.add_argument("config")
    s.add_argument("structure")
    s.add_argument("-w", "--workdir", required=True)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_relax)

    s = sub.add_parser("aimd", help="CP2K NVT MD at one temperature (resumes from a restart file)")
    s.add_argument("config")
    s.add_argument("structure")
    s.add_argument("-t", "--temperature", type=float, required=True)
    s.add_argument("-w", "--workdir", required=True)
    s.set_defaults(fn=cmd_aimd)

    s = sub.add_parser("convert", help="CP2K MD output directories -> one extxyz data set (eV, Angstrom)")
    s.add_argument("run_dir", nargs="+", help="CP2K MD output directory (project detected from *-pos-1.xyz)")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("-t", "--temperature", type=float, help="temperature label (default: read from the CP2K input)")
    s.add_argument("--strict", action="store_true", help="fail on a truncated last frame instead of dropping it")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser(
        "import", help="the data of a config's data block (CP2K runs or extxyz files) -> one extxyz data set"
    )
    s.add_argument("config")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("select", help="held-out split and selection of training frames")
    s.add_argument("config")
    s.add_argument("data")
    s.add_argument("-o", "--output", required=True, help="output directory")
    s.set_defaults(fn=cmd_select)

    s = sub.add_parser("train", help="train one backend on a split directory")
    s.add_argument("config")
    s.add_argument("--backend", default="deepmd")
    s.add_argument("--split", required=True)
    s.add_argument("-w", "--workdir", required=True)
    s.add_argument("-o", "--output", required=True, help="model directory")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("evaluate", help="errors of a model on held-out frames")
    s.add_argument("config")
    s.add_argument("model")
    s.add_argument("test")
    s.add_argument("--backend", default="deepmd")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--parity", required=True)
    s.set_defaults(fn=cmd_evaluate)

    a = p.parse_args(argv)
    logs.setup(level=logging.DEBUG if a.verbose else logging.INFO)
    try:
        a.fn(a)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"qdff {a.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
