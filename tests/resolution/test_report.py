"""The study's tables: the Pareto front and R^2 per level over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sfrdask.resolution.report import by_level, pareto_front


def test_pareto_front():
    x = np.array([1.0, 2.0, 3.0, 2.5, 0.5, 2.0])
    y = np.array([0.9, 0.8, 0.5, 0.4, 0.95, 0.7])
    assert pareto_front(x, y).tolist() == [4, 0, 1, 2]


def test_r2_by_level_gives_mean_sd_and_the_seeds_behind_each_cell():
    df = pd.DataFrame([
        {"model": "m", "image_zoom": 2, "spectrum_zoom": 2, "r2": 0.5},
        {"model": "m", "image_zoom": 2, "spectrum_zoom": 2, "r2": 0.7},
        {"model": "m", "image_zoom": 3, "spectrum_zoom": 2, "r2": 0.1},  # not matched: left out
        {"model": "t", "image_zoom": None, "spectrum_zoom": 3, "r2": 0.4},
    ])  # fmt: skip
    rows = {r["model"]: r for r in by_level(df)}
    assert rows["m"]["16 px / 1155"] == "0.600 +- 0.141 (2)"
    assert rows["t"]["8 px / 577"] == "0.400 (1)" and rows["t"]["16 px / 1155"] == "-"
