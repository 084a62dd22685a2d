"""sfrdask explain: captum attributions over wavelength and pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sfrdask.trained.attributions import WINDOWS, Explanation, fibre_table, radius_arcsec, window_table


def _explanation(spectrum=None, wave=None, image=None, zoom=2):
    n = (spectrum if spectrum is not None else image).shape[0]
    groups = pd.DataFrame({"class": ["GALAXY"] * (n - 1) + ["QSO"], "sfr_bin": ["a"] * n})
    bands = None if image is None else np.full((n, 5), 0.2)
    return Explanation(
        "m", Path("run"), "AVG", np.arange(n), groups, spectrum, wave, image, bands, zoom, None
    )


def test_window_shares_and_enrichment_have_known_answers():
    wave = np.linspace(3500, 8400, 4901)  # 1 A per sample
    s = np.zeros((3, wave.size))
    s[:, np.abs(wave - 6563) < 5] = 1.0  # everything on H-alpha
    s /= s.sum(axis=1, keepdims=True)
    t = window_table(_explanation(s, wave)).set_index("value")
    assert t.loc["all", "H-alpha + [N II] share"] == pytest.approx(1.0)
    lo, hi = WINDOWS["H-alpha + [N II]"]
    assert t.loc["all", "H-alpha + [N II] enrichment"] == pytest.approx(wave.size / (hi - lo + 1), rel=0.02)
    assert t.loc["all", "H-beta share"] == 0 and t.loc["QSO", "objects"] == 1


def test_fibre_share_has_known_answers():
    r = radius_arcsec(16, 2)  # 1.584" pixels: the 4 central pixels lie inside the 1.5" fibre
    inside = r <= 1.5
    assert inside.sum() == 4
    img = np.where(inside, 1.0, 0.0)[None].repeat(2, 0) / 4
    t = fibre_table(_explanation(image=img)).set_index("value")
    assert t.loc["all", "inside fibre"] == pytest.approx(1.0)
    assert t.loc["all", "fibre area"] == pytest.approx(4 / 256)
