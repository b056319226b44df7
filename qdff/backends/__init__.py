"""Training backends. Each adapter writes its native input from the common split,
runs the backend's own trainer and exports a deployable model with a ``model.json``
metadata file that :func:`qdff.models.load_calculator` understands."""
import importlib

BACKENDS = ("deepmd", "schnetpack", "nequip", "allegro")


def get(name: str):
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} unknown; available: {', '.join(BACKENDS)}")
    # imported on demand: each backend's packages live in its own environment
    return importlib.import_module(f"{__name__}.{name}")
