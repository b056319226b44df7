"""envs/*.yaml (for --sdm conda), pyproject.toml and the lock (envs/requirements.lock) agree:
the lock pins every requirement at a version pyproject's range admits, and the environment
files pin the lock's versions."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from qdff import lockfile

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "envs/requirements.lock"


def _name(req):
    return lockfile.requirement_name(req)


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


# extras `make setup` leaves out: bench's peer (skmatter) holds scikit-learn below 1.9, so it is
# installed by hand for benchmarks/fps.py only (see pyproject.toml)
NOT_LOCKED_EXTRAS = {"bench"}


def test_make_setup_installs_every_extra_but_the_unlocked_ones():
    m = re.search(r'pip install -q -e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text())
    assert m and set(m.group(1).split(",")) == set(PYPROJECT["project"]["optional-dependencies"]) - NOT_LOCKED_EXTRAS


def test_lock_pins_every_requirement_of_pyproject_and_its_extras_within_their_ranges():
    lock = lockfile.read(LOCK)
    problems = []
    skipped = {
        lockfile.requirement_name(r)
        for e in NOT_LOCKED_EXTRAS
        for r in PYPROJECT["project"]["optional-dependencies"][e]
    }
    for raw in lockfile.pyproject_requirements():
        if lockfile.requirement_name(raw) in skipped:
            continue
        req = Requirement(raw)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = lockfile.canonical(req.name)
        if name not in lock:
            problems.append(f"{raw}: not in {LOCK.name}")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{raw}: the lock has {lock[name]}, outside pyproject's range")
        for extra in req.extras:  # e.g. snakemake[reports] -> its extra's packages are locked too
            from importlib.metadata import requires

            for sub in map(Requirement, requires(req.name) or []):
                if (
                    sub.marker is not None
                    and sub.marker.evaluate({"extra": extra})
                    and not sub.marker.evaluate({"extra": ""})
                ):
                    if lockfile.canonical(sub.name) not in lock:
                        problems.append(f"{raw}: {sub.name} (of extra {extra!r}) not in {LOCK.name}")
    assert not problems, "\n".join(problems) + "\nregenerate with `make lock` (see README)"


def test_lock_is_name_equals_version_and_says_how_to_regenerate():
    text = LOCK.read_text()
    assert "make lock" in text
    lock = lockfile.parse(text)  # raises on any line that is not name==version
    assert lock["torch"] == "2.13.0" and "+" not in "".join(lock.values())


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_are_the_locked_versions_within_pyproject(env_file):
    pins, lock = _pins(), lockfile.read(LOCK)
    for req in _pip_reqs(env_file):
        assert _name(req) in pins, f"{env_file.name}: {req} is not in pyproject.toml"
        r = Requirement(req)
        assert str(r.specifier) == f"=={lock[_name(req)]}", (
            f"{env_file.name}: {req} is not the locked {lock[_name(req)]}"
        )
        assert Requirement(pins[_name(req)]).extras == r.extras, f"{env_file.name}: {req} extras differ from pyproject"


def test_the_running_venv_is_the_lock():
    """`make setup` installs the lock and this suite runs in that venv."""
    errors = [p for p in lockfile.check_installed(LOCK) if not p.startswith("warning")]
    assert not errors, errors


def test_lock_writer_strips_local_labels_and_pins_env_files(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs/x.yaml").write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n      - torch==2.13.0\n"
        "      - vesin[torch]  # comment\n      - ase>=3.23\n"
    )
    pins = lockfile.write(
        "torch==2.13.0+cpu\nvesin==0.4.2\nase==3.29.0\nqdff==0.1.0\n", tmp_path / "lock", envs_dir=tmp_path / "envs"
    )
    assert pins == {"torch": "2.13.0", "vesin": "0.4.2", "ase": "3.29.0"}
    assert lockfile.read(tmp_path / "lock") == pins
    assert (tmp_path / "envs/x.yaml").read_text() == (
        "dependencies:\n  - python=3.11\n  - pip:\n      - torch==2.13.0\n"
        "      - vesin[torch]==0.4.2  # comment\n      - ase==3.29.0\n"
    )


# the pyproject extra each backend's environment installs (allegro shares nequip's)
BACKEND_EXTRA = {
    "deepmd": "deepmd",
    "schnetpack": "schnetpack",
    "nequip": "nequip",
    "allegro": "nequip",
    "mace": "mace",
    "sevenn": "universal",
    "sevennet0": "universal",
    "chgnet": "chgnet",
}


def test_every_backend_has_an_env_with_its_extra():
    from qdff.training.backends import BACKENDS, BASELINES

    assert set(BACKEND_EXTRA) == set(BACKENDS + BASELINES)
    for backend, extra in BACKEND_EXTRA.items():
        env = {_name(r) for r in _pip_reqs(ROOT / f"envs/{backend}.yaml")}
        for req in PYPROJECT["project"]["optional-dependencies"][extra]:
            assert _name(req) in env, f"envs/{backend}.yaml lacks {req} of extra {extra!r}"


# the environment a --no-deps package belongs to, where its name differs
ENV_OF_PACKAGE = {"mace-torch": "mace"}


def test_no_deps_packages_are_installed_by_post_deploy_scripts():
    """Packages pip cannot resolve (pyproject [tool.qdff].no-deps) are installed with
    --no-deps by the env's post-deploy script, with the same pin."""
    for req in PYPROJECT["tool"]["qdff"]["no-deps"]:
        script = ROOT / f"envs/{ENV_OF_PACKAGE.get(_name(req), _name(req))}.post-deploy.sh"
        assert script.is_file(), f"{script.name} missing for {req}"
        assert f"pip install --no-deps {req}" in script.read_text()
        assert Requirement(req).specifier.contains(lockfile.read(LOCK)[_name(req)]), f"{req} differs from the lock"
        assert _name(req) not in _pins(), f"{req} must not be in an extra (pip cannot resolve it)"


def test_every_rule_conda_env_exists():
    from qdff.training.backends import BACKENDS, BASELINES

    BACKENDS = BACKENDS + BASELINES
    for smk in (ROOT / "rules").glob("*.smk"):
        for env in re.findall(r'"\.\./(envs/[^"]+)"', smk.read_text()):
            for path in {
                env.replace("{backend}", b).replace("{AL_BACKEND}", b).replace("{AL_EXPLORE_ENV}", x)
                for b in BACKENDS
                for x in (*BASELINES, "analysis")
            }:
                assert (ROOT / path).is_file(), f"{smk.name} names missing {path}"
