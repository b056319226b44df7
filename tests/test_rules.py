"""Every rule's params are exactly what its step reads (qdff/smk.py states the convention).

A rule's script is ``smk.run(snakemake, <module>.<step>, files..., [explicit keywords])``;
smk.run passes the rule's ``params:`` as keyword arguments, and a step receives nothing else of
the config. So a key a step reads but the rule does not declare fails the job, and a key the
rule declares but the step does not take fails it too; this test finds either before a run,
for every rule, from the rule files and the scripts' source."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULE = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)*)", re.M)


def _rules() -> dict[str, dict]:
    """rule name -> {"params": [names], "script": path} from rules/*.smk (snakefmt's layout)."""
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for m in RULE.finditer(smk.read_text()):
            body = m.group(2)
            params = re.search(r"^    params:\n((?:        .*\n|\n)*?)(?=^    \w|\Z)", body, re.M)
            names = re.findall(r"^        (\w+)=", params.group(1), re.M) if params else []
            script = re.search(r'^    script:\n\s+"\.\./(scripts/\w+\.py)"', body, re.M)
            out[m.group(1)] = {"file": smk.name, "params": names, "script": script.group(1) if script else None}
    return out


def _step_call(script: Path):
    """The step a script runs through smk.run, and the keywords it passes itself."""
    tree = ast.parse(script.read_text())
    modules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qdff"):
            for alias in node.names:
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "run"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "smk"
    ]
    assert len(calls) == 1, f"{script}: one smk.run(snakemake, step, ...) call expected"
    step = calls[0].args[1]
    assert isinstance(step, ast.Attribute) and isinstance(step.value, ast.Name), f"{script}: step must be module.name"
    fn = getattr(importlib.import_module(modules[step.value.id]), step.attr)
    return fn, {k.arg for k in calls[0].keywords}, tree


RULES = _rules()


def test_rules_were_found():
    # a change of the rule files' layout must not make the checks below vacuous
    assert len(RULES) >= 30 and sum(bool(r["params"]) for r in RULES.values()) >= 20


@pytest.mark.parametrize("rule", sorted(r for r, v in RULES.items() if v["script"]))
def test_rule_params_are_what_its_step_reads(rule):
    info = RULES[rule]
    fn, explicit, tree = _step_call(ROOT / info["script"])
    sig = inspect.signature(fn)
    kwonly = {n: p for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    params = set(info["params"])
    where = f"rule {rule} ({info['file']}) -> {fn.__module__}.{fn.__name__}"
    assert not params & explicit, f"{where}: {sorted(params & explicit)} both declared and passed by the script"
    undeclared = params - set(kwonly)
    assert not undeclared, f"{where}: params {sorted(undeclared)} are not keyword-only arguments of the step"
    missing = {n for n, p in kwonly.items() if p.default is inspect.Parameter.empty} - params - explicit
    assert not missing, f"{where}: the step reads {sorted(missing)}, which the rule does not declare"
    # the config reaches a step only through the params
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "snakemake":
            assert node.attr not in ("config", "params"), f"{info['script']}: reads snakemake.{node.attr} itself"


def test_steps_take_no_whole_config():
    """No step function takes the whole config (``cfg``): each takes what its rule declares."""
    for path in sorted((ROOT / "qdff/steps").glob("*.py")):
        mod = importlib.import_module(f"qdff.steps.{path.stem}" if path.stem != "__init__" else "qdff.steps")
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ == mod.__name__ and not name.startswith("_") and not name.endswith("_params"):
                assert "cfg" not in inspect.signature(fn).parameters, f"{mod.__name__}.{name} takes the whole config"


def test_launch_settings_are_no_rerun_trigger_for_this_snakemake():
    """qdff.smk.Launch relies on Snakemake skipping params it cannot represent when it decides
    what to re-run: checked against the installed Snakemake, next to a plain dict that it does
    record (an upgrade that changes this fails here, not on a cluster that re-runs its AIMD)."""
    from snakemake.persistence import UNREPRESENTABLE, PersistenceBase

    from qdff.smk import Launch

    launch = Launch({"command": "srun cp2k.psmp", "mem_mb": 4000})
    assert PersistenceBase._serialize_param_builtin(None, launch) is UNREPRESENTABLE
    assert PersistenceBase._serialize_param_builtin(None, dict(launch)) is not UNREPRESENTABLE
    assert {**{"preset": "xtb"}, **launch}["command"] == "srun cp2k.psmp"


def test_every_rule_that_runs_cp2k_gets_mpi_tasks_in_the_cluster_profile():
    """A rule whose step launches CP2K (its params pass the launch settings) must be routed
    like the AIMD in profiles/cluster: with one task, `srun cp2k.psmp` inside the job waited
    for resources forever (run_reference_md in the Slurm test, 2026-12-06)."""
    import re

    import yaml

    root = Path(__file__).resolve().parents[1]
    profile = yaml.safe_load((root / "profiles/cluster/config.yaml").read_text())["set-resources"]
    launching = set()
    for f in (root / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", f.read_text()):
            m = re.match(r"rule (\w+):", block)
            if m and "launch=CP2K_LAUNCH" in block:
                launching.add(m.group(1))
    # writes an input and checks it, runs no CP2K
    launching.discard("write_cp2k_input")
    assert launching >= {"run_aimd", "run_reference_md", "relax_structure"}
    missing = sorted(r for r in launching if not (profile.get(r, {}).get("tasks") and profile[r].get("mpi")))
    assert not missing, f"profiles/cluster/config.yaml set-resources lacks tasks and mpi for {missing}"


def test_no_two_helper_functions_of_the_rules_share_a_name():
    """Snakemake reads every rules file into one namespace: a second ``def`` of a name silently
    replaces the first for every rule, including those written against the first (this happened:
    an input function of one rule took over another's)."""
    names = [
        (m.group(1), smk.name)
        for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
        for m in re.finditer(r"^def (\w+)\(", smk.read_text(), re.M)
    ]
    seen: dict[str, str] = {}
    twice = []
    for name, where in names:
        if name in seen:
            twice.append(f"{name} ({seen[name]}, {where})")
        seen[name] = where
    assert not twice, f"defined more than once: {twice}"
