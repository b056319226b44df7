#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) once after creating envs/mace.yaml: mace-torch without its
# declared requirements (e3nn==0.4.4, which breaks e3nn 0.6 users); the env file lists its
# real runtime dependencies. Pin as in pyproject.toml [tool.qdff].no-deps.
set -euo pipefail
pip install --no-deps mace-torch==0.3.16
