"""The scene-synth and scene stages through the CLI: a stand-in data set made, two models compared."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_cli_runs_the_comparison(tmp_path):
    data = tmp_path / "d"
    synth = [
        sys.executable,
        "-m",
        "sfrdask",
        "scene-synth",
        "--out",
        str(data),
        "--objects",
        "120",
        "--size",
        "16",
    ]
    r = subprocess.run(synth, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "sfrdask", "scene", "--data", str(data), "--out", str(tmp_path / "o"),
           "--models", "scene-tree-audio,scene-early-fusion", "--size", "16", "--epochs", "3",
           "--cluster", "threads"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (
        "scene-early-fusion" in r.stdout
        and np.isfinite(pd.read_csv(tmp_path / "o" / "results.csv").accuracy).all()
    )
