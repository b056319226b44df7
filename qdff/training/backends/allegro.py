"""Allegro (nequip-allegro 0.8+): the NequIP flow of :mod:`qdff.training.backends.nequip` with
Allegro's strictly local model block (format of allegro's configs/tutorial.yaml)."""

from __future__ import annotations

from pathlib import Path

from . import nequip


def model_block(p: dict, type_map: list[str]) -> dict:
    n_scalar = p["num_scalar_features"]
    return {
        "_target_": "allegro.model.AllegroModel",
        "seed": p["seed"],
        "model_dtype": "float32",
        "type_names": type_map,
        "r_max": p["cutoff"],
        # the key is `radial_chemical_embed` in 0.8, whatever older docstrings say
        "radial_chemical_embed": {
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": p["num_bessels"],
            "bessel_trainable": False,
            "polynomial_cutoff_p": 6,
        },
        "radial_chemical_embed_dim": n_scalar,
        "scalar_embed_mlp_hidden_layers_depth": 1,
        "scalar_embed_mlp_hidden_layers_width": n_scalar,
        "scalar_embed_mlp_nonlinearity": "silu",
        "l_max": p["l_max"],
        "num_layers": p["num_layers"],
        "num_scalar_features": n_scalar,
        "num_tensor_features": p["num_tensor_features"],
        "allegro_mlp_hidden_layers_depth": 1,
        "allegro_mlp_hidden_layers_width": n_scalar,
        "allegro_mlp_nonlinearity": "silu",
        "parity": True,
        "tp_path_channel_coupling": True,
        "readout_mlp_hidden_layers_depth": 1,
        "readout_mlp_hidden_layers_width": n_scalar,
        "readout_mlp_nonlinearity": "silu",
        "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
        "per_type_energy_scales": "${training_data_stats:forces_rms}",
        "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
        "per_type_energy_scales_trainable": False,
        "per_type_energy_shifts_trainable": False,
        **nequip._zbl(p, type_map),
    }


def _version() -> str:
    import allegro

    return allegro.__version__


FLAVOUR = nequip.Flavour("allegro", "Allegro", model_block, _version)


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Train, package and export; return the path of ``model.json`` in ``model_dir``."""
    return nequip.train_flavour(FLAVOUR, train_frames, valid_frames, refs, params, workdir, model_dir, data_files, gate)


def calculator(model_dir: Path, meta: dict, device: str):
    return nequip.load_package(model_dir, meta, device)
