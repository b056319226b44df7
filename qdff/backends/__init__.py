"""Training backends. Each adapter writes its native input from the common split,
runs the backend's own trainer and exports a deployable model with a ``model.json``
metadata file that :func:`qdff.models.load_calculator` understands."""

BACKENDS = ("deepmd",)


def get(name: str):
    if name == "deepmd":
        from . import deepmd

        return deepmd
    raise ValueError(f"backend {name!r} unknown; available: {', '.join(BACKENDS)}")
