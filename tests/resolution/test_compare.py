"""Paired bootstrap intervals: checked against a plain loop over the same draws, and against
differences that are (or are not) there."""

from __future__ import annotations

import numpy as np
import pytest

from sfrdask.errors import SfrdaskError
from sfrdask.resolution.compare import _r2_draws, compare, recommend


def _row(model, seed, objects, pred, px=8, samples=577, setup=""):
    return {"model": model, "seed": seed, "image_px": px, "spectrum_samples": samples, "setup": setup,
            "test_objects": list(objects), "test_predicted": list(pred)}  # fmt: skip


def test_r2_of_every_draw_equals_r2_on_the_resampled_objects():
    rng = np.random.default_rng(3)
    y, pred = rng.normal(size=50), rng.normal(size=(2, 50))
    idx = rng.integers(0, 50, size=(4, 50))
    weights = np.stack([np.bincount(i, minlength=50) for i in idx]).astype(float)
    got = _r2_draws(y, pred, weights)
    for s in range(2):
        for b in range(4):
            yy, pp = y[idx[b]], pred[s, idx[b]]
            want = 1 - ((yy - pp) ** 2).sum() / ((yy - yy.mean()) ** 2).sum()
            assert got[s, b] == pytest.approx(want, rel=1e-12, abs=0)


def test_a_real_difference_is_not_tied_and_a_copy_is():
    rng = np.random.default_rng(0)
    objects = np.arange(400)
    y = rng.normal(size=400)
    truth = dict(zip(objects.tolist(), y.tolist(), strict=True))
    rows = []
    for seed in (0, 1, 2):
        good = y + rng.normal(scale=0.3, size=400)
        same = good + rng.normal(scale=0.01, size=400)
        bad = y + rng.normal(scale=0.8, size=400)
        rows += [_row("good", seed, objects, good), _row("same", seed, objects, same),
                 _row("bad", seed, objects, bad, px=16, samples=1155)]  # fmt: skip
    cmp = compare(rows, truth, draws=500)
    cells = cmp.cells.set_index("model")
    assert cmp.best in ("good 8 px / 577", "same 8 px / 577")
    assert cells.loc["bad", "delta_hi"] < 0 and not cells.loc["bad", "tied"]
    assert cells.loc["bad", "p_at_least_as_good"] == 0
    other = "same" if cmp.best.startswith("good") else "good"
    assert cells.loc[other, "tied"] and cells.loc[other, "delta_lo"] < 0 < cells.loc[other, "r2"]
    assert cells.loc["bad", "r2_lo"] < cells.loc["bad", "r2"] < cells.loc["bad", "r2_hi"]
    rec = recommend(cmp, {"good 8 px / 577": 100.0, "same 8 px / 577": 300.0, "bad 16 px / 1155": 1000.0})
    assert rec["cell"] == "same 8 px / 577"  # the cheapest tied cell, never the untied faster one
    assert rec["speedup"] == pytest.approx(3.0 if cmp.best.startswith("good") else 1.0, rel=1e-12)


def test_one_seed_needs_a_hundred_test_objects():
    objects = np.arange(60)
    truth = {int(o): float(o) for o in objects}
    rows = [_row("m", 0, objects, objects + 1.0), _row("n", 0, objects, objects * 1.1)]
    with pytest.raises(SfrdaskError, match="at least 100 test objects with one seed"):
        compare(rows, truth)
    assert compare([*rows, _row("m", 1, objects, objects + 2.0)], truth, draws=50).n_test == 60
