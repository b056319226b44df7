"""A deliberately bad model must be flagged for what is wrong with it: a finished run's model
with its potential energy surface scaled (energies and forces x ``--scale``, 0.5 by default: a
potential half as stiff, still conservative), run through the validation's own ML-MD protocol
and pair-distance comparison beside the unscaled model.

    python benchmarks/bad_model.py results/<system> --config config/<system>.yaml \
        --backend nequip [--scale 0.5] [--temperature 300] [--seeds 3]

Prints, for the model and its scaled copy: the stability verdict (k of n seeds) and, per element
pair, the pair-distance verdict (k of n seeds inside the AIMD interval) with the first-shell
flags (longer, shorter, broader, narrower than the AIMD's block pairs differ).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ase.calculators.calculator import Calculator, all_changes  # noqa: E402

from qdff import config as qconfig  # noqa: E402
from qdff.data import dataset  # noqa: E402


class Scaled(Calculator):
    """Energies and forces of ``calc`` times ``scale``."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, calc, scale: float):
        super().__init__()
        self.inner, self.scale = calc, float(scale)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {
            "energy": self.scale * a.get_potential_energy(),
            "forces": self.scale * a.get_forces(),
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--backend", default="nequip")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args(argv)
    from qdff.steps.mlmd import structural_fidelity
    from qdff.training.models import load_calculator
    from qdff.validation import mlmd, rdf, stability
    from qdff.validation.metrics import fidelity_outside

    cfg = qconfig.load(a.config)
    p = cfg["mlmd"]
    T = a.temperature
    start = dataset.at_temperature(dataset.read_frames(a.results / "split/test.extxyz"), T)[0]
    aimd = dataset.equilibrated(
        dataset.at_temperature(dataset.read_frames(a.results / "dataset/frames.extxyz"), T),
        cfg["selection"]["equilibration_fs"],
    )
    calc = load_calculator(a.results / "models" / a.backend)
    for label, c in ((a.backend, calc), (f"{a.backend} x {a.scale:g}", Scaled(calc, a.scale))):
        traj: list = []
        t0 = time.perf_counter()
        runs = [
            mlmd.run(
                c,
                start,
                aimd,
                temperature=T,
                steps=p["steps"],
                record_every=p["record_every"],
                nve_steps=p["nve_steps"],
                seed=p["seed"] + k,
                trajectory=traj,
                **mlmd.protocol(p),
            )
            for k in range(a.seeds)
        ]
        s = mlmd.combine(runs)
        s.update(stress=False, reference_temperature=T)  # as run_mlmd's summary at an AIMD temperature
        ml = rdf.usable_mlmd_frames(traj, s)
        ev = cfg["evaluation"]
        r = rdf.compare(aimd, ml, ev["rdf_r_max"], ev["rdf_bins"])
        print(f"== {label} at {T:g} K ({time.perf_counter() - t0:.0f} s)")
        print("  stability:", "stable" if s["stable"] else f"UNSTABLE ({s['reason'][:300]})")
        print(f"  mean temperature {s['temperature_mean']:.0f} K, coordination {s.get('coordination')}")
        for pair, verdict in (r.get("verdict") or {}).items():
            print(f"  {pair}: {verdict}; flags: {(r.get('flags') or {}).get(pair, '')}")
        print("  pairs below the AIMD interval:", r.get("below_reference_interval"))
        # the undercoordinated criterion recomputed from the same frames, whichever the config judges by
        under = stability.undercoordinated_by_seed(traj, aimd, runs[0]["bond_break_distances"], p["bond_break_fs"])
        print(f"  undercoordinated: {sum(v is not None for v in under.values())} of {len(under)} seeds")
        for seed, why in under.items():
            print(f"    seed {seed}: {why or 'stable'}")
        print(
            "  structural fidelity outside the AIMD interval:",
            fidelity_outside(structural_fidelity(s, traj, aimd, p["bond_break_fs"])) or "nothing",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
