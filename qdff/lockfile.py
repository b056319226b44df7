"""The lock: exact versions of every Python package ``make setup`` installs.

``envs/requirements.lock`` is a pip constraints file (``name==version`` a line) written by
``make lock`` from a clean resolve of pyproject.toml's ranges; ``make setup`` installs with it
as constraints and then checks the venv against it. pyproject.toml keeps the compatible ranges
for people who install qdff into an environment of their own; envs/*.yaml (for
``snakemake --sdm conda``) carry the locked versions too. tests/test_envs.py checks all three
agree.
"""

from __future__ import annotations

import datetime
import platform
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The exact versions `make setup` installs (pip constraints: `pip install -c envs/requirements.lock`).
# Do not edit by hand: `make lock` re-resolves pyproject.toml's ranges from today's releases in
# a scratch venv (same torch and DeePMD build steps) and rewrites this file and the pins of
# envs/*.yaml; then run `make test` and commit both.
"""
# never pinned: pip itself is upgraded by the install, qdff is the project
SKIP = {"qdff"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return canonical(re.split(r"[\[<>=!~ ;@]", req.strip(), maxsplit=1)[0])


def parse(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of a lock (or ``pip list --format=freeze``) text."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._\-]*)==([^\s;]+)", line)
        if not m:
            raise ValueError(f"lock line {line!r} is not name==version")
        out[canonical(m.group(1))] = m.group(2)
    return out


def read(path) -> dict[str, str]:
    return parse(Path(path).read_text())


def pyproject_requirements(pyproject=ROOT / "pyproject.toml") -> list[str]:
    """Every requirement of pyproject.toml: dependencies, every extra, and [tool.qdff].no-deps."""
    data = tomllib.loads(Path(pyproject).read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"]["optional-dependencies"].values():
        reqs += extra
    return reqs + list(data.get("tool", {}).get("qdff", {}).get("no-deps", []))


def write(freeze_text: str, path, envs_dir=ROOT / "envs") -> dict[str, str]:
    """Write the lock from ``pip list --format=freeze`` output, and the locked versions into
    the pip entries of ``envs_dir/*.yaml``."""
    pins = {}
    for name, version in parse(freeze_text).items():
        if name in SKIP:
            continue
        # a local label (torch's "+cpu") names the index the wheel came from; the plain
        # version matches it there and the same release elsewhere
        pins[name] = version.split("+", 1)[0]
    stamp = (
        f"# Resolved {datetime.date.today().isoformat()} with Python {platform.python_version()} "
        f"on {sys.platform} {platform.machine()}.\n"
    )
    text = HEADER + stamp + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    for env in sorted(Path(envs_dir).glob("*.yaml")):
        env.write_text(pin_env_text(env.read_text(), pins))
    return pins


# a pip entry of an environment file: "      - name[extras]<spec>"
_ENV_PIP_LINE = re.compile(
    r"^(?P<lead>\s{6,}- )(?P<name>[A-Za-z0-9][A-Za-z0-9._\-]*)(?P<extras>\[[^\]]*\])?"
    r"(?P<spec>\s*[<>=!~][^#]*?)?(?P<tail>\s*(#.*)?)$"
)


def pin_env_text(text: str, pins: dict[str, str]) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        m = _ENV_PIP_LINE.match(line.rstrip("\n"))
        if m and canonical(m["name"]) in pins:
            line = f"{m['lead']}{m['name']}{m['extras'] or ''}=={pins[canonical(m['name'])]}{m['tail'] or ''}\n"
        out.append(line)
    return "".join(out)


def check_installed(path) -> list[str]:
    """Problems of this interpreter's environment against the lock: a locked package missing
    or at another version (errors), and packages the lock does not name (warnings)."""
    from importlib import metadata

    pins = read(path)
    installed = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in SKIP:
            installed[name] = dist.version
    errors = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            errors.append(f"{name}=={version} is locked but not installed")
        elif have.split("+", 1)[0] != version:
            errors.append(f"{name} {have} is installed, the lock says {version}")
    extra = sorted(set(installed) - set(pins) - {"pip"})
    return errors + [f"warning: {n} {installed[n]} is installed but not in the lock" for n in extra]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("write", "check"):
        print("usage: lock.py write LOCK < pip-list-freeze | lock.py check LOCK", file=sys.stderr)
        return 2
    if argv[0] == "write":
        pins = write(sys.stdin.read(), argv[1])
        print(f"[lock] {len(pins)} packages in {argv[1]}")
        return 0
    problems = check_installed(argv[1])
    for p in problems:
        print(f"[setup] {p}", file=sys.stderr)
    errors = [p for p in problems if not p.startswith("warning")]
    if errors:
        print(f"[setup] the venv does not match {argv[1]}: remove .venv/ and run make setup again", file=sys.stderr)
        return 1
    print(f"[setup] every package at the version of {argv[1]}")
    return 0
