"""sfrdask explain: captum attributions over wavelength and pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sfrdask.attributions import WINDOWS, Explanation, fibre_table, radius_arcsec, window_table
from sfrdask.cli import main
from sfrdask.runs import train


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


def test_explain_a_fusion_network_from_the_command_line(store, tmp_path, capsys):
    r = train(
        store, "intermediate-fusion", 2, 2, out=tmp_path / "runs", epochs=2, batch_size=16, progress=False
    )
    out = tmp_path / "explain"
    args = [
        "explain",
        r.run_dir,
        "--store",
        str(store),
        "--objects",
        "10",
        "--steps",
        "8",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert 'inside the 3" fibre' in text and "H-alpha + [N II]" in text and "context share" in text
    for f in ("spectrum_attribution.png", "image_attribution.png", "spectrum_windows.csv", "image_fibre.csv"):
        assert (out / f).stat().st_size > 0, f
    w = pd.read_csv(out / "spectrum_windows.csv")
    assert set(w.group) == {"all", "class", "sfr_bin"} and w.loc[0, "objects"] == 10
    shares = w.loc[0, [c for c in w.columns if c.endswith("share")]].to_numpy(float)
    assert np.all((shares >= 0) & (shares <= 1))
    f = pd.read_csv(out / "image_fibre.csv")
    # five shares written with 4 significant digits: their sum is 1 within 5 x 0.5e-4
    assert f.loc[0, [f"{b} band" for b in "ugriz"]].sum() == pytest.approx(1.0, abs=2.5e-4)


def test_explain_refuses_a_tree(store, tmp_path, capsys):
    r = train(store, "gbt-both", 3, 3, out=tmp_path, progress=False)
    assert main(["explain", r.run_dir, "--store", str(store)]) == 2
    assert "explain needs a network" in capsys.readouterr().err
