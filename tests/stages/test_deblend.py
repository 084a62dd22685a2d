"""The deblend stage: a deblended cutout per selected object at every image level of the store."""

from __future__ import annotations

import numpy as np

from sfrdask.io.store import open_group
from sfrdask.preprocessing.quality import selected_objects


def test_every_selected_object_gets_a_clean_cutout(staged):
    groups = staged["deblend"].groups
    assert list(groups) == [3]  # the store's one image level
    clean = open_group(staged["store"], "clean/3")
    n = selected_objects(staged["store"]).size
    assert clean["image"].shape == (n, 5, 8, 8)
    assert np.isfinite(clean["image"].values).mean() > 0.9
