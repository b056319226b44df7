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


# the pyproject extra each backend's environment installs (allegro shares nequip's)
BACKEND_EXTRA = {"deepmd": "deepmd", "schnetpack": "schnetpack", "nequip": "nequip", "allegro": "nequip"}


def test_every_backend_has_an_env_with_its_extra():
    from qdff.backends import BACKENDS

    assert set(BACKEND_EXTRA) == set(BACKENDS)
    for backend, extra in BACKEND_EXTRA.items():
        env = {_name(r) for r in _pip_reqs(ROOT / f"envs/{backend}.yaml")}
        for req in PYPROJECT["project"]["optional-dependencies"][extra]:
            assert _name(req) in env, f"envs/{backend}.yaml lacks {req} of extra {extra!r}"


def test_no_deps_packages_are_installed_by_post_deploy_scripts():
    """Packages pip cannot resolve (pyproject [tool.qdff].no-deps) are installed with
    --no-deps by the env's post-deploy script, with the same pin."""
    for req in PYPROJECT["tool"]["qdff"]["no-deps"]:
        script = ROOT / f"envs/{_name(req)}.post-deploy.sh"
        assert script.is_file(), f"{script.name} missing for {req}"
        assert f"pip install --no-deps {req}" in script.read_text()
        assert _name(req) not in _pins(), f"{req} must not be in an extra (pip cannot resolve it)"


def test_every_rule_conda_env_exists():
    from qdff.backends import BACKENDS

    for smk in (ROOT / "rules").glob("*.smk"):
        for env in re.findall(r'"\.\./(envs/[^"]+)"', smk.read_text()):
            for path in {env.replace("{backend}", b) for b in BACKENDS}:
                assert (ROOT / path).is_file(), f"{smk.name} names missing {path}"
