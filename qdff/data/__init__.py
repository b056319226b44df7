"""Data set: canonical extxyz frames with per-frame metadata (rules/dataset.smk); shipped structures in structures/."""
