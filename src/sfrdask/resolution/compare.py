"""Every difference of the study with its confidence: paired bootstrap intervals over the test
objects, pooled over the seeds (Bouthillier et al. 2021, "Accounting for variance in machine
learning benchmarks").

Each bootstrap draw resamples the test objects once for every cell (the pairing: all cells are
scored on the same draw, so what the draw makes easy or hard cancels in a difference) and each
cell's seeds with replacement (the training's own variance). A cell's R² in a draw is the mean over
its drawn seeds of R² on the drawn objects. The best cell is the one of highest R² on the whole
test split; every other cell gets the interval of its difference to it and the probability that it
is at least as good; cells whose 95% interval of the difference reaches 0 are tied with the best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.errors import SfrdaskError

MIN_TEST = 100  # a study of one seed needs at least this many test objects for intervals


@dataclass(frozen=True)
class Comparison:
    """One row per cell: R² and its 95% interval, ΔR² to the best cell with its interval, the
    probability of being at least as good, and whether it is tied with the best."""

    cells: pd.DataFrame
    best: str
    draws: int
    n_test: int


def cell_name(row: dict[str, Any] | pd.Series) -> str:
    """``model 64 px / 4620`` (a modality it does not read left out), with its setup."""
    lv = [
        f"{int(row['image_px'])} px" if pd.notna(row.get("image_px")) else "",
        f"{int(row['spectrum_samples'])}" if pd.notna(row.get("spectrum_samples")) else "",
    ]
    setup = f" ({row['setup']})" if row.get("setup") else ""
    if (
        row.get("setup") == "control"
    ):  # the level's data averaged inside the network to the lowest level's shape
        setup = " averaged to 8 px / 577 (control)"
    return f"{row['model']} {' / '.join(v for v in lv if v)}{setup}"


def check_enough(seeds: int, n_test: int) -> None:
    """Refuse intervals that would rest on too little: one seed and fewer than MIN_TEST objects."""
    if seeds < 2 and n_test < MIN_TEST:
        raise SfrdaskError(
            f"bootstrap intervals and learning curves need at least {MIN_TEST} test objects with one seed "
            f"(or 2 seeds); this study has {n_test} test objects and 1 seed: add seeds or objects, "
            "or turn them off (--no-bootstrap --no-curves)"
        )


def _r2_draws(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² of ``pred`` (seeds, n) for every draw of ``weights`` (draws, n: how often each object is
    drawn): (seeds, draws)."""
    n = y.size
    mean = weights @ y / n
    sst = weights @ (y**2) - n * mean**2
    sse = (pred - y) ** 2 @ weights.T
    return 1.0 - sse / np.where(sst > 0, sst, np.nan)


def compare(
    rows: list[dict[str, Any]], truth: dict[int, float], draws: int = 2000, seed: int = 0, level: float = 0.95
) -> Comparison:
    """The cells of ``rows`` (records with ``test_objects`` and ``test_predicted``; the control and
    learning-curve points included as cells of their own) against the best cell, ``truth`` the
    label of every test object."""
    df = pd.DataFrame(rows)
    df["cell"] = [cell_name(r) for r in rows]
    objects = np.array(sorted(set(rows[0]["test_objects"])), dtype=int)
    for r in rows:
        if sorted(r["test_objects"]) != objects.tolist():
            raise SfrdaskError(f"{cell_name(r)} seed {r['seed']} was tested on other objects than the rest")
    check_enough(int(df.groupby("cell").size().max()), objects.size)
    y = np.array([truth[o] for o in objects], float)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(objects.size, np.full(objects.size, 1 / objects.size), size=draws).astype(float)
    r2, point = {}, {}
    for cell, g in df.groupby("cell", sort=False):
        pred = np.stack(
            [
                pd.Series(r.test_predicted, index=r.test_objects)[objects].to_numpy(float)
                for r in g.itertuples()
            ]
        )
        per_seed = _r2_draws(y, pred, weights)  # (seeds, draws)
        pick = rng.integers(0, per_seed.shape[0], size=(per_seed.shape[0], draws))  # seeds with replacement
        r2[cell] = per_seed[pick, np.arange(draws)].mean(axis=0)
        point[cell] = float(np.mean(1 - ((pred - y) ** 2).sum(1) / ((y - y.mean()) ** 2).sum()))
    main = df[df.setup.fillna("") == ""].cell.unique()
    best = max(main, key=lambda c: point[c])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = []
    for cell, g in df.groupby("cell", sort=False):
        delta = r2[cell] - r2[best]
        first = g.iloc[0]
        out.append(
            {
                "cell": cell,
                "model": first.model,
                "setup": first.get("setup") or "",
                "image_px": first.image_px,
                "spectrum_samples": first.spectrum_samples,
                "seeds": len(g),
                "r2": point[cell],
                "r2_lo": float(np.percentile(r2[cell], lo)),
                "r2_hi": float(np.percentile(r2[cell], hi)),
                "delta": point[cell] - point[best],
                "delta_lo": float(np.percentile(delta, lo)),
                "delta_hi": float(np.percentile(delta, hi)),
                "p_at_least_as_good": float(np.mean(delta >= 0)),
            }
        )
    cells = pd.DataFrame(out).sort_values("r2", ascending=False, ignore_index=True)
    cells["tied"] = (cells.delta_hi >= 0) & (cells.setup == "")
    return Comparison(cells, best, draws, int(objects.size))


def recommend(cmp: Comparison, throughput: dict[str, float]) -> dict[str, Any]:
    """The cheapest cell tied with the best (highest end-to-end objects/s), and its throughput
    against the best cell's."""
    cells = cmp.cells.assign(objects_per_s=lambda d: d.cell.map(throughput))
    tied = cells[cells.tied].sort_values(["objects_per_s", "r2"], ascending=False)
    pick, best = tied.iloc[0], cells[cells.cell == cmp.best].iloc[0]
    return {
        "cell": pick.cell,
        "r2": pick.r2,
        "r2_lo": pick.r2_lo,
        "r2_hi": pick.r2_hi,
        "objects_per_s": pick.objects_per_s,
        "best": best.cell,
        "best_r2": best.r2,
        "best_objects_per_s": best.objects_per_s,
        "speedup": pick.objects_per_s / best.objects_per_s,
        "tied": int(tied.shape[0]),
    }
