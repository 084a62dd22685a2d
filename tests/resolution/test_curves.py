"""Learning curves: the power law recovered from points that follow one, and the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sfrdask.resolution.curves import power_law, project, verdict


def test_a_power_law_is_recovered_and_projected():
    n = np.repeat([500.0, 1000.0, 2000.0], 3)
    r2 = power_law(n, 0.8, 3.0, 0.5) + np.tile([-0.002, 0.0, 0.002], 3)
    out = project(pd.DataFrame({"n_train": n, "seed": np.tile([0, 1, 2], 3), "r2": r2}), 7700)
    assert out["projected"] == pytest.approx(power_law(np.array([7700.0]), 0.8, 3.0, 0.5)[0], abs=0.02)
    assert out["projected_lo"] <= out["projected"] <= out["projected_hi"]
    assert sorted(out["sizes"]) == [500, 1000, 2000]


def test_the_verdict_says_whether_the_recommendation_could_change():
    table = pd.DataFrame({"cell": ["a", "b"], "projected": [0.70, 0.75], "projected_lo": [0.68, 0.72],
                          "projected_hi": [0.72, 0.78], "n_target": [7700, 7700]})  # fmt: skip
    assert "would change" in verdict(table, "a")
    assert "holds" in verdict(table, "b")
    table.loc[1, "projected_lo"] = 0.69
    assert "could change" in verdict(table, "a")
    assert "has no learning curve" in verdict(table, "c")
