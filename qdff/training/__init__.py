"""Training: backend adapters and trained models loaded as ASE calculators (rules/train.smk)."""
