"""Validation: held-out errors, the metrics table, ML-MD, pair distances, normal modes and VDOS (rules/evaluate.smk, mlmd.smk, vibrations.smk)."""
