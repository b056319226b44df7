#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) once after creating envs/schnetpack.yaml: schnetpack
# without its declared requirements (sympy<=1.12, black, pre-commit), whose real runtime
# dependencies the env file lists. Pin as in pyproject.toml [tool.qdff].no-deps.
set -euo pipefail
pip install --no-deps schnetpack==2.1.1
