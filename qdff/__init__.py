"""qdff: from CP2K AIMD of colloidal quantum dots to validated machine-learning force fields.

Internal units everywhere: eV, Angstrom, fs, K (see :mod:`qdff.units`).
"""

__version__ = "0.1.0"
