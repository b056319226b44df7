"""SchNetPack training pieces with the energy loss per atom.

SchNetPack's ``ModelOutput`` puts the MSE of the total energy in the loss, which grows as
N^2 with the atom count against the force MSE (0.05:0.95 was 1900:1 per atom at 190
atoms). Here the energy output's loss and metrics are on E/N, so ``energy_weight`` weighs
the MSE of the energy per atom as in every backend. At module level, so that Lightning can
pickle them into its checkpoints; the exported model (``task.save_model``) is SchNetPack's
own ``NeuralNetworkPotential`` and needs neither.
"""

from __future__ import annotations

from . import spk_compat

spk_compat.apply()

import schnetpack.properties as structure  # noqa: E402
from schnetpack.task import AtomisticTask, ModelOutput  # noqa: E402

N_ATOMS = structure.n_atoms


class PerAtomTask(AtomisticTask):
    """AtomisticTask whose predictions carry the batch's atom counts, for :class:`PerAtomOutput`
    (training, validation and test steps all predict through this method)."""

    def predict_without_postprocessing(self, batch):
        pred = super().predict_without_postprocessing(batch)
        pred[N_ATOMS] = batch[N_ATOMS]
        return pred


class PerAtomOutput(ModelOutput):
    """A per-structure property (the energy) whose loss and metrics are per atom."""

    def _per_atom(self, pred, target):
        n = pred[N_ATOMS].to(pred[self.name].dtype)
        return pred[self.name] / n, target[self.target_property] / n

    def calculate_loss(self, pred, target):
        if self.loss_weight == 0 or self.loss_fn is None:
            return 0.0
        return self.loss_weight * self.loss_fn(*self._per_atom(pred, target))

    def update_metrics(self, pred, target, subset):
        per_atom = self._per_atom(pred, target)
        for metric in self.metrics[subset].values():
            metric(*per_atom)
