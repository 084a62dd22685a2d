"""Runs end to end: evaluate's checks, and the catalogue's out-of-sample coverage rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sfrdask.errors import SfrdaskError
from sfrdask.runs import evaluate, held_out_check


def test_evaluate_refuses_an_unknown_split_before_reading_anything(tmp_path):
    with pytest.raises(SfrdaskError, match="unknown split 'holdout'"):
        evaluate(tmp_path / "no-run", tmp_path / "no-store", split="holdout")


def _objects(n: int = 400, seed: int = 0) -> tuple[xr.Dataset, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 1.0, n)
    pred = y + rng.normal(0.0, 0.3, n)
    flag = np.where(np.arange(n) < n // 2, 0, 1)
    ds = xr.Dataset(
        {"AVG": ("object", y), "FLAG": ("object", flag), "CLASS": ("object", np.array(["GALAXY"] * n))}
    )
    bounds = {lv: (pred - w, pred + w) for lv, w in ((0.68, 0.3), (0.95, 0.6))}
    return ds, pred, bounds


def test_flag_nonzero_objects_with_a_label_are_scored_as_never_fitted():
    ds, pred, bounds = _objects()
    report = pd.DataFrame({"model": ["gbt-both"], "split": ["test"], "group": ["all"]})
    out = held_out_check(ds, "AVG", pred, bounds, ["GALAXY", "QSO"], report)
    extra = out.iloc[1:]
    assert len(out) > 1 and (extra["split"] == "FLAG != 0 (catalogue values, never fitted)").all()
    assert (extra["model"] == "gbt-both").all()
    row = extra[extra["group"] == "all"].iloc[0]
    held = ds["FLAG"].values != 0
    inside = np.abs(ds["AVG"].values[held] - pred[held]) <= 0.3
    assert row["n"] == held.sum()
    assert row["coverage_68"] == pytest.approx(inside.mean(), rel=1e-12, abs=0)


def test_no_flag_column_leaves_the_report_as_it_was():
    ds, pred, bounds = _objects()
    report = pd.DataFrame({"model": ["m"], "split": ["test"], "group": ["all"]})
    assert held_out_check(ds.drop_vars("FLAG"), "AVG", pred, bounds, ["GALAXY"], report) is report
