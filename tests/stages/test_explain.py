"""The explain stage through the CLI: a fusion network's attributions written and summarised, a
tree refused (on the stage tests' tiny store: 8 px, 577 samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sfrdask.cli import main
from sfrdask.trained.modelling import train


def test_explain_a_fusion_network_from_the_command_line(staged, tmp_path, capsys):
    store = staged["store"]
    r = train(
        store, "intermediate-fusion", 3, 3, out=tmp_path / "runs", epochs=2, batch_size=16, progress=False
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


def test_explain_refuses_a_tree(staged, tmp_path, capsys):
    store = staged["store"]
    r = train(store, "gbt-both", 3, 3, out=tmp_path, progress=False)
    assert main(["explain", r.run_dir, "--store", str(store)]) == 2
    assert "explain needs a network" in capsys.readouterr().err
