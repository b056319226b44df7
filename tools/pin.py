"""Print the requirement for PACKAGE exactly as pinned in pyproject.toml (used by the Makefile)."""

import re
import sys
import tomllib
from pathlib import Path

data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
reqs = list(data["project"]["dependencies"])
for extra in data["project"]["optional-dependencies"].values():
    reqs += extra
# packages installed with --no-deps (see pyproject.toml [tool.qdff])
reqs += data.get("tool", {}).get("qdff", {}).get("no-deps", [])
name = sys.argv[1].lower()
for req in reqs:
    if re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0].lower() == name:
        print(req)
        break
else:
    sys.exit(f"pin.py: {name} is not pinned in pyproject.toml")
