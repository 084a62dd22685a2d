"""The redshift and class context, and rest-frame spectra."""

from __future__ import annotations

import numpy as np
import pytest

from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import wavelength_grid
from sfrdask.preprocessing.context import columns, context_features, rest_frame


def test_context_columns_follow_the_redshift_rule():
    z = np.array([0.05, 0.1, np.nan, -1e-4, 1.5])
    x = context_features(z, np.array(["GALAXY", "GALAXY", "GALAXY", "STAR", " qso "]), ["class", "redshift"])
    assert columns(["class", "redshift"]) == ("log_dl", "has_z", "is_qso")  # fixed order
    np.testing.assert_array_equal(x[:, 1], [1, 1, 0, 0, 1])
    assert np.isnan(x[2, 0]) and np.isnan(x[3, 0])  # no usable redshift: the normaliser's mean
    # log10 d_L [Mpc], flat LambdaCDM H0 = 70: ~ 226 Mpc at z = 0.05, twice the distance ~ +0.32 dex
    assert x[0, 0] == pytest.approx(np.log10(226.0), abs=0.01)
    assert x[1, 0] - x[0, 0] == pytest.approx(0.33, abs=0.02)
    np.testing.assert_array_equal(x[:, 2], [0, 0, 0, 0, 1])
    assert context_features(z, None, []).shape == (5, 0)
    with pytest.raises(SfrdaskError, match="unknown context"):
        context_features(z, None, ["mass"])


def test_rest_frame_puts_a_line_on_the_same_samples_at_any_redshift():
    grid = wavelength_grid(2)
    out = []
    for z in (0.05, 0.15):
        spec = np.exp(-0.5 * ((grid - 6564.6 * (1 + z)) / 3.0) ** 2)[None]  # H-alpha, observed
        out.append(rest_frame(spec, np.array([z]), grid)[0])
    peaks = [int(np.nanargmax(o)) for o in out]
    assert peaks[0] == peaks[1]
    assert grid[peaks[0]] / 1.1 == pytest.approx(6564.6, abs=4)  # the rest grid is grid / 1.1
    assert np.isnan(rest_frame(out[0][None], np.array([np.nan]), grid)).all()  # no redshift
