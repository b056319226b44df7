"""envs/*.yaml (for --sdm conda) must agree with pyproject.toml, the one place with pins."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(req):
    return re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0].lower()


def _pins():
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _pip_reqs(env_file):
    env = yaml.safe_load(env_file.read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    return []


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_pyproject(env_file):
    pins = _pins()
    for req in _pip_reqs(env_file):
        assert _name(req) in pins, f"{env_file.name}: {req} is not in pyproject.toml"
        assert req.replace(" ", "") == pins[_name(req)], f"{env_file.name}: {req} != pyproject {pins[_name(req)]}"


def test_backend_extra_has_an_env():
    deepmd_env = {_name(r) for r in _pip_reqs(ROOT / "envs/deepmd.yaml")}
    for req in PYPROJECT["project"]["optional-dependencies"]["deepmd"]:
        assert _name(req) in deepmd_env


def test_every_rule_conda_env_exists():
    for smk in (ROOT / "rules").glob("*.smk"):
        for env in re.findall(r'"\.\./(envs/[^"]+)"', smk.read_text()):
            assert (ROOT / env).is_file(), f"{smk.name} names missing {env}"
