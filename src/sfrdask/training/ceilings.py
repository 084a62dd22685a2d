"""How well any model could do on a synthetic survey: two ceilings from its ground truth.

The labels of the synthetic survey are noisy by construction (MPA-JHU-like PDF widths), and the
cutouts and spectra carry the physics only through noise, so R^2 = 1 is out of reach. On the
same test split as the models, from ``truth_objects.csv`` (:func:`sfrdask.synthetic.truth.store_truth`):

``ceiling-label-noise``   the true value scored against the label: no prediction can be expected
                          to beat the label's own scatter.
``ceiling-information``   gradient-boosted trees fitted on the training split (early-stopped on
                          validation) to the noise-free quantities the data carry,
                          :data:`INFORMATION` — what a perfect measurement of those would give.

Real stores have no truth: :func:`ceilings` returns no rows for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sfrdask.choices import SPLITS
from sfrdask.synthetic.truth import store_truth
from sfrdask.training.data import split_objects, target_values
from sfrdask.training.metrics import regression_metrics

# truth columns the information ceiling is fitted on: what spectra (redshift, fibre SFR from the
# lines, Balmer-decrement dust, old-population fraction from the 4000 A break) and images (five
# total magnitudes, size, Sersic index, axis ratio) carry, plus the class; the stellar mass is left
# out (the data carry it only through the magnitudes and redshift, which are in)
INFORMATION = (
    "z",
    "logsfr_fibre",
    "a_halpha",
    "q_old",
    "mag_u",
    "mag_g",
    "mag_r",
    "mag_i",
    "mag_z",
    "re_arcsec",
    "sersic",
    "ba",
)
TRUE = {"AVG": "logsfr_true", "LGM_AVG": "logm"}


def _true_target(truth: Any, target: str) -> np.ndarray:
    if target == "SSFR":
        return (truth["logsfr_true"] - truth["logm"]).to_numpy(np.float64)
    return truth[TRUE[target]].to_numpy(np.float64)


def ceilings(store: str | Path, target: str, seed: int = 0) -> list[dict[str, Any]]:
    """The two ceiling rows for ``target`` on the store's test split (none without truth)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # scikit-learn: only for a synthetic store

    truth = store_truth(store)
    if truth is None:
        return []
    y = target_values(store, target)
    idx = {s: split_objects(store, s, y) for s in SPLITS}
    t = {s: truth.reindex(i) for s, i in idx.items()}
    test_y = y[idx["test"]]
    true = _true_target(t["test"], target)
    rows = [{"model": "ceiling-label-noise", "metrics": regression_metrics(test_y, true)}]

    def features(df: Any) -> np.ndarray:
        x = df[list(INFORMATION)].to_numpy(np.float64)
        return np.column_stack([x, (df["class"] == "QSO").to_numpy(np.float64)])

    gbt = HistGradientBoostingRegressor(
        max_iter=1000, learning_rate=0.05, early_stopping=True, n_iter_no_change=30, random_state=seed
    )
    gbt.fit(
        features(t["train"]), y[idx["train"]], X_val=features(t["validation"]), y_val=y[idx["validation"]]
    )
    rows.append(
        {
            "model": "ceiling-information",
            "metrics": regression_metrics(test_y, gbt.predict(features(t["test"]))),
        }
    )
    for r in rows:
        r.update(n_train=idx["train"].size, n_test=idx["test"].size)
    return rows
