"""CP2K: input writing, output parsing, running (rules/aimd.smk)."""
