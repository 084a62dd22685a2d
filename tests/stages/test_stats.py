"""The stats stage: the label's statistics over the selection, and its table and plot files."""

from __future__ import annotations

import numpy as np

from sfrdask.io.store import open_store
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.stages import stats
from sfrdask.stages.base import execute


def test_statistics_of_the_selected_labels(staged, tmp_path):
    r = execute(stats.STAGE, stats.Params(staged["store"], out=tmp_path), "synchronous")
    assert [p.name for p in r.files] == ["label_stats.csv", "label_stats.md", "label_distribution.png"]
    assert all(p.stat().st_size > 0 for p in r.files)
    sel = selected_objects(staged["store"])
    avg = open_store(staged["store"], image_zoom=None, spectrum_zoom=None)["AVG"].values[sel]
    whole = r.table.loc["all"]
    assert whole["count"] == sel.size and np.isclose(whole["mean"], avg.mean(), rtol=1e-6, atol=0)
    assert r.table.loc[["GALAXY", "QSO"], "count"].sum() == sel.size  # per class, adding up
