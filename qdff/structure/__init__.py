"""Structure: building or reading the quantum dot, classifying its atomic sites (rules/structure.smk)."""
