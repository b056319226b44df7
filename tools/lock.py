"""`make lock` / `make setup`: write envs/requirements.lock from `pip list --format=freeze`, or
check the running venv against it (see qdff/lockfile.py)."""

import sys

from qdff.lockfile import main

sys.exit(main())
