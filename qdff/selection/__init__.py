"""Selection: descriptors, frame selection and split, configuration-space map, learning curve (rules/select.smk)."""
