"""Report: the HTML report, its interactive figures and figure grids (rules/report.smk)."""
