from __future__ import annotations

import numpy as np
import pytest

from sfrdask.preprocessing.split import assign_splits


def test_deterministic_order_independent_and_proportional():
    rng = np.random.default_rng(0)
    plate, mjd, fiber = (
        rng.integers(266, 3000, 5000),
        rng.integers(51000, 55000, 5000),
        rng.integers(1, 641, 5000),
    )
    a = assign_splits(plate, mjd, fiber)
    perm = rng.permutation(5000)
    b = assign_splits(plate[perm], mjd[perm], fiber[perm])
    np.testing.assert_array_equal(a[perm], b)
    frac = np.bincount(a, minlength=3) / a.size
    np.testing.assert_allclose(frac, [0.7, 0.15, 0.15], atol=0.02)
    c = assign_splits(plate, mjd, fiber, {"train": 0.5, "validation": 0.25, "test": 0.25})
    assert (c[a == 2] == 2).mean() > 0.99, "a test object stays in test when the train share shrinks"


def test_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits([1], [1], [1], {"train": 0.9, "validation": 0.2, "test": 0.1})
