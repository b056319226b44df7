"""Which model to use: the verdicts of every check on one line per model, and the one to pick.

The report's first screen (issue 33). A model passes when it passes every calibrated check:
its held-out forces beat predicting zero force, its energies beat each temperature's
mean-energy baseline, its ML-MD is stable in every seed at every temperature, and no element
pair's distance distribution has most seeds outside the AIMD's own block-to-block interval.
The reference run as a model (``mlmd.reference``) is the null test of the last two: a check
that CP2K itself fails is a broken check, so it is named and not held against any model.
Among the models that pass, the one with the lowest held-out force RMSE (the mean over
``training.seeds`` models where there are several) is recommended.
"""

from __future__ import annotations

import math

from .metrics import REFERENCE, seed_mean  # REFERENCE: the metrics row of the reference run as a model

#: the checks, in the order the report lists them
CHECKS = ("forces", "energies", "stability", "pair distances")


def _mean(row: dict, key: str):
    """A held-out error of a metrics row (:func:`qdff.validation.metrics.seed_mean`), None
    where it is missing or not a number: a check without a value did not run."""
    v = seed_mean(row, key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _t(key: str, prefix: str) -> str:
    return key[len(prefix) :].replace("K", " K")


def stability_text(row: dict) -> str | None:
    """ "3/3 seeds stable at 300 K, 2/3 at 500 K (first failure ...)": per temperature, the seeds
    that stayed stable; None where the model ran no ML-MD."""
    per_t = row.get("mlmd_per_temperature")
    if not per_t:
        return None
    parts = []
    for t in per_t:
        n = len(t.get("seeds") or []) or 1
        ok = n - int(t.get("unstable_seeds") or (0 if t.get("stable") else n))
        parts.append(f"{ok}/{n} at {t['temperature']:g} K{' (stress)' if t.get('stress') else ''}")
    return "seeds stable: " + ", ".join(parts)


def check_row(row: dict) -> dict:
    """Each check of one metrics row: True (passed), False (failed, with the reason) or None
    (not run for this model)."""
    checks, reasons = {}, {}
    f, zero = _mean(row, "force_rmse_meV_per_A"), row.get("baseline_zero_force_rmse_meV_per_A")
    if f is None or zero is None:
        checks["forces"] = None
    else:
        checks["forces"] = f < zero
        if not checks["forces"]:
            reasons["forces"] = f"held-out force RMSE {f:.1f} meV/Å is not below the zero-force {zero:.1f}"
    useful = {k: v for k, v in row.items() if k.startswith("energy_useful_T_") and v is not None}
    if not useful:
        checks["energies"] = None
    else:
        checks["energies"] = all(useful.values())
        if not checks["energies"]:
            bad = [_t(k, "energy_useful_T_") for k, v in useful.items() if not v]
            reasons["energies"] = "energy error not below the mean-energy baseline at " + ", ".join(bad)
    if "mlmd_stable" not in row:
        checks["stability"] = None
    else:
        checks["stability"] = bool(row["mlmd_stable"])
        if not checks["stability"]:
            reasons["stability"] = "unstable in ML-MD (" + (stability_text(row) or "") + ")"
    outside = row.get("pair_distance_outside")
    if outside is None:
        checks["pair distances"] = None
    else:
        checks["pair distances"] = not outside
        if outside:
            reasons["pair distances"] = "pair distances outside the AIMD interval: " + ", ".join(outside)
    return {"checks": checks, "reasons": reasons}


def recommend(metrics: list[dict], zero_shot: set[str] | frozenset = frozenset()) -> dict:
    """The verdict of every check per model and the model to use.

    ``metrics``: the rows of evaluation/metrics.json; ``zero_shot``: the backends that are
    universal potentials used as they ship. Returns ``{"recommended": backend or None,
    "broken": [checks the reference fails], "models": [{"backend", "zero_shot", "checks",
    "reasons", "passes", "not_run"}], "reference": {...} or None, "sentence": str}``.
    """
    ref_row = next((r for r in metrics if r.get("backend") == REFERENCE), None)
    reference = None
    broken: list[str] = []
    if ref_row is not None:
        reference = check_row(ref_row)
        # the reference made the labels: only the ML-MD checks apply to it
        broken = [c for c in ("stability", "pair distances") if reference["checks"].get(c) is False]
        reference["stability_text"] = stability_text(ref_row)
    models = []
    for row in metrics:
        if row.get("backend") == REFERENCE:
            continue
        judged = check_row(row)
        used = {c: v for c, v in judged["checks"].items() if c not in broken}
        not_run = [c for c, v in used.items() if v is None]
        models.append(
            {
                "backend": row["backend"],
                "zero_shot": row["backend"] in zero_shot,
                **judged,
                "not_run": not_run,
                # every check that is not broken passed: a model with a check not run is not validated
                "passes": bool(used) and all(v is True for v in used.values()),
                "stability_text": stability_text(row),
                "force_rmse": _mean(row, "force_rmse_meV_per_A"),
            }
        )
    passing = [m for m in models if m["passes"] and m["force_rmse"] is not None]
    best = min(passing, key=lambda m: m["force_rmse"]) if passing else None
    return {
        "recommended": best["backend"] if best else None,
        "broken": broken,
        "models": models,
        "reference": reference,
        "sentence": _sentence(best, models, broken, ref_row is not None),
    }


def _sentence(best, models, broken, have_reference) -> str:
    null = (
        " The reference itself (CP2K through the same ML-MD protocol) fails the "
        + " and ".join(broken)
        + " check, so that check is broken here and is held against no model."
        if broken
        else (" CP2K itself passes every ML-MD check (the null test)." if have_reference else "")
    )
    if best:
        return (
            f"Use {best['backend']}: the lowest held-out force error ({best['force_rmse']:.1f} meV/Å) of the "
            f"models that pass every check." + null
        )
    if not models:
        return "No model was evaluated." + null
    why = "; ".join(
        f"{m['backend']}: "
        + (
            "; ".join(m["reasons"].values())
            or ("not run: " + ", ".join(m["not_run"]) if m["not_run"] else "no check ran")
        )
        for m in models
    )
    return "No model passes every check, so none is recommended (" + why + ")." + null
