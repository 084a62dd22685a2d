"""The PCA stage: components fitted on the training split, for images and spectra."""

from __future__ import annotations

import numpy as np

from sfrdask.io.store import open_group
from sfrdask.preprocessing.quality import selected_objects


def test_components_are_fitted_on_the_training_split_of_both_modalities(staged):
    groups = staged["pca"].groups
    assert set(groups) == {"image/3", "spectrum/3"}
    selected = selected_objects(staged["store"]).size
    for name, g in groups.items():
        assert g["components"] == 8 and 0.3 < g["explained"] <= 1 + 1e-9
        assert 0.6 * selected < g["n_train"] < 0.8 * selected  # the 70% training split only
        ratio = open_group(staged["store"], f"pca/{name}")["explained_variance_ratio"].values
        assert (np.diff(ratio) <= 1e-12).all()  # in order of the variance they explain
