"""Learning curves: what more training objects would change.

The study trains its best networks on nested fractions of the training split (25%, 50%; 100% is
the cell itself) at a few levels, fits R²(n) = a - b n^-c to every (seed, fraction) point of a
network at a level (a power law in the number of training objects: the usual shape of a learning
curve, a the asymptote), and projects R² to the user's training-split size. The interval comes
from refitting on the seeds resampled within each fraction.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from sfrdask.resolution.compare import cell_name


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def fit(n: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """(a, b, c) of R²(n) = a - b n^-c, with a <= 1, b >= 0 and 0.1 <= c <= 1.5 (a curve that
    rises and flattens)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        p, _ = curve_fit(
            power_law,
            n,
            r2,
            p0=(min(1.0, r2.max() + 0.05), 1.0, 0.5),
            bounds=([-1.0, 0.0, 0.1], [1.0, np.inf, 1.5]),
            maxfev=20000,
        )
    return p


def project(points: pd.DataFrame, n_target: int, draws: int = 300, seed: int = 0) -> dict[str, Any]:
    """``points``: columns n_train, seed, r2 of one network at one level. Mean R² per training
    size, the fit, and R² projected to ``n_target`` with a 95% interval."""
    n, r2 = points.n_train.to_numpy(float), points.r2.to_numpy(float)
    p = fit(n, r2)
    rng = np.random.default_rng(seed)
    groups = [g.index.to_numpy() for _, g in points.reset_index(drop=True).groupby("n_train")]
    sims = []
    for _ in range(draws):
        idx = np.concatenate([rng.choice(g, size=g.size) for g in groups])
        try:
            sims.append(power_law(np.array([n_target]), *fit(n[idx], r2[idx]))[0])
        except RuntimeError:  # no fit on this draw
            continue
    sizes = points.groupby("n_train").r2.mean()
    return {
        "sizes": {int(k): float(v) for k, v in sizes.items()},
        "a": p[0],
        "b": p[1],
        "c": p[2],
        "projected": float(power_law(np.array([n_target]), *p)[0]),
        "projected_lo": float(np.percentile(sims, 2.5)) if sims else np.nan,
        "projected_hi": float(np.percentile(sims, 97.5)) if sims else np.nan,
        "n_target": n_target,
    }


def curves(rows: list[dict[str, Any]], models: list[str], n_target: int) -> pd.DataFrame:
    """One row per network and level that has learning-curve points: its R² at each training size
    and the projection to ``n_target`` training objects."""
    df = pd.DataFrame(rows)
    df = df[
        df.model.isin(models) & (df.setup.fillna("").str.startswith("frac") | (df.setup.fillna("") == ""))
    ]
    out = []
    for _, g in df.groupby(["model", "image_px", "spectrum_samples"], dropna=False, sort=False):
        if g.setup.fillna("").nunique() < 2:  # no curve here: the cell alone
            continue
        cell = cell_name({**g.iloc[0].to_dict(), "setup": ""})
        out.append(
            {
                "cell": cell,
                "model": g.model.iloc[0],
                "image_px": g.image_px.iloc[0],
                "spectrum_samples": g.spectrum_samples.iloc[0],
                **project(g, n_target),
            }
        )
    return pd.DataFrame(out)


def verdict(table: pd.DataFrame, recommended: str) -> str:
    """Whether the recommendation could change at the projected size: it holds when no other
    projected cell's interval lies above the recommended cell's projection."""
    if table.empty:
        return "No learning curves were trained."
    n = int(table.n_target.iloc[0])
    if recommended not in set(table.cell):
        return (
            f"The recommended cell ({recommended}) has no learning curve; the curves below show how "
            f"the projected cells rank at {n:,} training objects."
        )
    rec = table[table.cell == recommended].iloc[0]
    above = table[(table.cell != recommended) & (table.projected_lo > rec.projected)]
    overlap = table[(table.cell != recommended) & (table.projected > rec.projected)]
    if not above.empty:
        return (
            f"At {n:,} training objects the recommendation would change: {', '.join(above.cell)} "
            f"projects above {recommended} ({rec.projected:.3f}) beyond its interval."
        )
    if not overlap.empty:
        return (
            f"At {n:,} training objects the recommendation could change: {', '.join(overlap.cell)} "
            f"projects higher than {recommended} ({rec.projected:.3f}), within the intervals."
        )
    return f"At {n:,} training objects the recommendation holds: no projected cell rises above {recommended}."
