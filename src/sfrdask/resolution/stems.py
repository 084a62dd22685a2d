"""Which stem each network of the study keeps: the one with the lower validation loss.

Every network with a stem trains twice per seed, at every level (:func:`sfrdask.resolution.grid.
with_other_stem`): with the configured stem (its input averaged down to the working resolution
plus learned detail channels) and with the averaged input alone. At a higher level the second is,
up to how HiSS-Cube resamples, the lowest level's network without detail channels, so keeping the
better of the two gives every level that model as a candidate (the study's fairness): learned
detail that a network cannot use on this many training objects costs it the choice, not the level.
The choice reads the validation split only (the best epoch's validation loss); the test split
decides nothing here.
"""

from __future__ import annotations

from typing import Any

from sfrdask.resolution.record import training_of


def best_val_loss(row: dict[str, Any]) -> float:
    """The validation loss of the weights a training kept (its best epoch's); trees have none."""
    curve = row.get("val_curve") or []
    return min(curve) if curve else float("inf")


def choose(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per training whatever its stem: the row of lower validation loss (the configured
    stem on a tie), in the order of the first of each pair, marked with which stem was kept
    (``stem_kept``) and each stem's validation loss and R² (``stem_val_loss``, ``stem_r2``) for the
    report. A training recorded with one stem only keeps it."""
    pairs: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        pairs.setdefault(training_of(row).choice, []).append(row)
    out = []
    for group in pairs.values():
        kept = min(group, key=lambda r: (best_val_loss(r), bool(r.get("stem"))))
        out.append(
            {
                **kept,
                "stem_kept": kept.get("stem") or "configured",
                "stem_val_loss": {r.get("stem") or "configured": best_val_loss(r) for r in group},
                "stem_r2": {r.get("stem") or "configured": r["r2"] for r in group},
            }
        )
    return out
