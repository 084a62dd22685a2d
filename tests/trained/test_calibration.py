"""Normalised split conformal intervals (MAPIE): nominal coverage, and wider where the noise is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sfrdask.errors import SfrdaskError
from sfrdask.trained.calibration import (
    coverage_table,
    difficulty_features,
    fit_calibration,
    held_out_check,
    pit,
    reliability,
)


def _data(n: int, seed: int):
    """Predictions with noise that grows at low S/N and for quasars (known to the features)."""
    rng = np.random.default_rng(seed)
    pred = rng.normal(0, 1, n)
    snr = 10 ** rng.uniform(0, 1.5, n)
    qso = rng.random(n) < 0.15
    sigma = 0.1 + 0.8 / np.sqrt(snr) + 0.4 * qso
    y = pred + rng.normal(0, 1, n) * sigma
    z = rng.uniform(0.02, 0.3, n)
    return difficulty_features(pred, z, snr, qso), y, pred, qso, sigma


def test_coverage_is_nominal_and_widths_follow_the_noise():
    x, y, pred, qso, sigma = _data(8000, 1)
    cal = fit_calibration(x[:4000], y[:4000], seed=0)
    b = cal.intervals(x[4000:])
    t = coverage_table(y[4000:], pred[4000:], b, np.where(qso[4000:], "QSO", "GALAXY"))
    row = t[t["group"] == "all"].iloc[0]
    # 4,000 test objects: binomial sd 0.007 at 68%, 0.0034 at 95%; the calibration set adds as much
    assert abs(row["coverage_68"] - 0.68) < 0.03 and abs(row["coverage_95"] - 0.95) < 0.02
    width = b[0.68][1] - b[0.68][0]
    assert np.corrcoef(width, sigma[4000:])[0, 1] > 0.7  # adaptive, not one width for all
    q = t[t["group"] == "class QSO"].iloc[0]
    g = t[t["group"] == "class GALAXY"].iloc[0]
    assert q["width_68"] > 1.5 * g["width_68"]
    assert abs(q["coverage_68"] - 0.68) < 0.08 and len(t) == 13  # all, 2 classes, 10 deciles


def test_reliability_and_pit_are_flat_when_calibrated():
    x, y, *_ = _data(6000, 2)
    cal = fit_calibration(x[:3000], y[:3000], seed=0)
    b = cal.intervals(x[3000:])
    rel = reliability(y[3000:], b)
    assert np.max(np.abs(rel["empirical"] - rel["nominal"])) < 0.04
    hist, _ = np.histogram(pit(y[3000:], b), bins=5, range=(0, 1.0001))
    assert hist.min() > 0.7 * hist.max()


def test_a_miscalibrated_model_is_caught():
    """Intervals calibrated on one noise level under-cover data with twice the noise: the table
    must show it (the check can fail)."""
    x, y, pred, *_ = _data(4000, 3)
    cal = fit_calibration(x[:2000], y[:2000], seed=0)
    noisier = pred[2000:] + 2 * (y[2000:] - pred[2000:])
    t = coverage_table(noisier, pred[2000:], cal.intervals(x[2000:]), np.full(2000, "GALAXY"))
    assert t.iloc[0]["coverage_68"] < 0.5


def test_too_few_validation_labels_is_a_clear_error():
    x, y, *_ = _data(100, 4)
    short = y.copy()
    short[:60] = np.nan
    with pytest.raises(SfrdaskError, match="validation objects with labels, got 40"):
        fit_calibration(x, short)
    # enough for pooled factors and for 80 galaxies, not for 20 quasars of their own
    groups = np.where(np.arange(100) < 20, "QSO", "GALAXY")
    assert set(fit_calibration(x, y, groups).regressors) == {"", "GALAXY"}


def test_mondrian_groups_get_their_own_coverage():
    """Two classes whose noise differs by 3x but which the features cannot tell apart: a pooled
    calibration over-covers one and under-covers the other; one per class covers both."""
    rng = np.random.default_rng(5)
    n = 6000
    pred = rng.normal(0, 1, n)
    cls = np.where(rng.random(n) < 0.5, "GALAXY", "QSO")
    y = pred + rng.normal(0, 1, n) * np.where(cls == "QSO", 0.6, 0.2)
    x = difficulty_features(pred, np.full(n, 0.1), np.full(n, 10.0), np.zeros(n, bool))
    half = np.arange(n) < n // 2
    pooled = coverage_table(
        y[~half], pred[~half], fit_calibration(x[half], y[half]).intervals(x[~half]), cls[~half]
    )
    cal = fit_calibration(x[half], y[half], cls[half])
    per = coverage_table(y[~half], pred[~half], cal.intervals(x[~half], cls[~half]), cls[~half])
    at = {
        g: (pooled.set_index("group").loc[g, "coverage_68"], per.set_index("group").loc[g, "coverage_68"])
        for g in ("class GALAXY", "class QSO")
    }
    assert at["class GALAXY"][0] > 0.85 and at["class QSO"][0] < 0.5
    assert all(abs(v[1] - 0.68) < 0.04 for v in at.values())
    assert set(cal.regressors) == {"", "GALAXY", "QSO"}


def test_cross_fitted_intervals_estimate_the_coverage_honestly():
    """Out-of-fold intervals on a small calibration set cover at the nominal level (each row's
    interval comes from a calibration that never saw it), and an over-noisy label set is caught."""
    from sfrdask.trained.calibration import cross_fitted_intervals

    x, y, pred, qso, _ = _data(3000, 6)
    groups = np.where(qso, "QSO", "GALAXY")
    b = cross_fitted_intervals(x, y, groups, seed=0)
    assert all(np.isfinite(lo).all() and np.isfinite(hi).all() for lo, hi in b.values())
    row = coverage_table(y, pred, b, groups).iloc[0]
    assert abs(row["coverage_68"] - 0.68) < 0.03 and abs(row["coverage_95"] - 0.95) < 0.02
    # the same check on labels twice as noisy as the ones calibrated: coverage falls
    noisier = pred + 2 * (y - pred)
    bad = coverage_table(noisier, pred, cross_fitted_intervals(x, y, groups, seed=0), groups).iloc[0]
    assert bad["coverage_68"] < 0.5


def test_warnings_name_thin_calibrations_and_borrowed_factors():
    x, y, *_ = _data(400, 7)
    groups = np.where(np.arange(400) < 30, "QSO", "GALAXY")  # 30 quasars: pooled factors
    cal = fit_calibration(x, y, groups, seed=0)
    assert cal.scores[""] == 200 and "QSO" not in cal.scores and 0 < cal.scores["GALAXY"] < 200
    notes = cal.warnings(["GALAXY", "QSO"], below=150)
    assert any(n.startswith("class QSO: too few labelled calibration objects") for n in notes)
    assert not any(n.startswith("all intervals rest on") for n in notes)  # 200 pooled scores >= 150
    galaxy = cal.scores["GALAXY"]
    assert (galaxy < 150) == any(n.startswith(f"class GALAXY: its intervals rest on {galaxy}") for n in notes)
    thin = cal.warnings([], below=500)
    assert any(n.startswith("all intervals rest on 200 conformity scores") for n in thin)
    assert cal.warnings(["GALAXY"], below=10) == []


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
