"""Validation: held-out errors, ML-MD, RDFs, normal modes (rules/evaluate.smk, validate.smk, vibrations.smk)."""
