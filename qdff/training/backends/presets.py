"""Production settings of every backend (``backends.<name>.preset: production``).

The schema's defaults are the ``demo`` preset: small models and short trainings that run
on a laptop and in CI. ``production`` takes the hyperparameters of each package's own
documented example for accurate potentials (cited per block); keys set in the config
still win. Two things are deliberately *not* taken from those examples, so that the
backends stay comparable on the same split:

- the loss weights: every backend weighs the MSE of the energy per atom against the MSE
  of the force components with the same ``energy_weight`` : ``forces_weight`` (1 : 1, the
  ratio of the NequIP and Allegro tutorials, the only examples stated per atom). The other
  examples, converted to per-atom energy, would give different ratios: DeePMD's water
  example ``limit_pref_e = limit_pref_f = 1`` with its legacy 1/N normalisation is N : 1,
  192 : 1 for its 192 atoms; SchNetPack's md17 experiment (0.01 : 0.99 on the total energy
  of 21-atom aspirin) is 0.01 N^2 : 0.99, about 4.5 : 1;
- the resources (threads, memory, wall time) other than a longer wall time, which depend on
  the machine.
"""

from __future__ import annotations

import copy

PRESETS = ("demo", "production")

PRODUCTION = {
    # mace-torch README, "Training" example (model MACE, hidden_irreps 128x0e + 128x1o, r_max 5,
    # batch 10, max_num_epochs 1500); correlation 3 as in the MACE paper's models
    "mace": {
        "num_channels": 128,
        "max_L": 1,
        "correlation": 3,
        "r_max": 5.0,
        "batch_size": 10,
        "epochs": 1500,
        "lr": 0.01,
        "patience": 50,
        "runtime_min": 2880,
    },
    # deepmd-kit examples/water/se_e2_a/input.json (v3): se_e2_a descriptor and fitting net,
    # 10^6 steps, exponential decay 1e-3 -> 3.51e-8 every 5000 steps (our decay_steps for 10^6
    # steps); its prefactors start at 0.02 (energy) and 1000 (forces) times their limits, and
    # so do ours, over the common limits energy_weight and forces_weight
    "deepmd": {
        "rcut": 6.0,
        "rcut_smth": 0.5,
        "descriptor_neurons": [25, 50, 100],
        "axis_neuron": 16,
        "fitting_neurons": [240, 240, 240],
        "steps": 1000000,
        "batch_size": "auto",
        "start_lr": 0.001,
        "stop_lr": 3.51e-8,
        "start_energy_weight": 0.02,
        "start_forces_weight": 1000.0,
        "disp_freq": 1000,
        "runtime_min": 2880,
    },
    # schnetpack 2.1 configs: experiment/md17.yaml (cutoff 5, lr 1e-3, batch 10),
    # model/representation/painn.yaml (128 features, 3 interactions) with
    # radial_basis/gaussian.yaml (20 functions), task/scheduler/reduce_on_plateau.yaml
    # (factor 0.5, patience 75), callbacks/earlystopping.yaml (patience 200); the trainer's
    # max_epochs (100000) only bounds a training that early stopping ends
    "schnetpack": {
        "cutoff": 5.0,
        "n_atom_basis": 128,
        "n_interactions": 3,
        "n_rbf": 20,
        "epochs": 100000,
        "batch_size": 10,
        "lr": 0.001,
        "lr_patience": 75,
        "early_stopping_patience": 200,
        "runtime_min": 2880,
    },
    # nequip 0.19 configs/tutorial.yaml: 4 layers, l_max 1, 32 features, 8 Bessels, radial MLP
    # width 64, ZBL, batch 5, Adam lr 0.01, ReduceLROnPlateau patience 5, EarlyStopping
    # patience 20, max_epochs 1000
    "nequip": {
        "cutoff": 5.0,
        "num_layers": 4,
        "l_max": 1,
        "num_features": 32,
        "num_bessels": 8,
        "radial_mlp_width": 64,
        "zbl": True,
        "epochs": 1000,
        "batch_size": 5,
        "lr": 0.01,
        "lr_patience": 5,
        "early_stopping_patience": 20,
        "runtime_min": 2880,
    },
    # allegro 0.8 configs/tutorial.yaml: 2 layers, l_max 1, 64 scalar and 32 tensor features,
    # 8 Bessels, ZBL, lr 1e-3 ("Allegro models do better with learning rates around 1e-3");
    # its epochs (5), batch size (1) and the absent schedule are a toy run's, so those are
    # nequip's tutorial values, as for the NequIP backend
    "allegro": {
        "cutoff": 5.0,
        "num_layers": 2,
        "l_max": 1,
        "num_scalar_features": 64,
        "num_tensor_features": 32,
        "num_bessels": 8,
        "zbl": True,
        "epochs": 1000,
        "batch_size": 5,
        "lr": 0.001,
        "lr_patience": 5,
        "early_stopping_patience": 20,
        "runtime_min": 2880,
    },
    # sevenn 0.13 presets/fine_tune.yaml: 100 epochs, batch 4, Adam lr 0.004, exponential decay
    # 0.99 per epoch, a checkpoint every 10 epochs; its architecture is what the backend always
    # uses, and its Huber loss is replaced by the common per-atom MSE (see above)
    "sevenn": {
        "epochs": 100,
        "batch_size": 4,
        "lr": 0.004,
        "lr_gamma": 0.99,
        "checkpoint_every": 10,
        "runtime_min": 2880,
    },
}


def apply(config: dict) -> dict:
    """Fill the production settings into every ``backends.<name>`` block with ``preset:
    production``, under the keys the config sets itself (in place, before the schema's
    defaults). Blocks that are not mappings, and unknown presets, are left to the schema's
    error messages."""
    for name, block in (config.get("backends") or {}).items():
        if isinstance(block, dict) and block.get("preset") == "production" and name in PRODUCTION:
            for key, value in PRODUCTION[name].items():
                block.setdefault(key, copy.deepcopy(value))
    return config
