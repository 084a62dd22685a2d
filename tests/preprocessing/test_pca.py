from __future__ import annotations

import dask
import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from sfrdask import open_store
from sfrdask.io.store import open_group
from sfrdask.preprocessing import fit_pca_store
from sfrdask.preprocessing.pca import transform
from sfrdask.preprocessing.quality import selected_objects


@pytest.fixture(scope="module")
def spectra_pca(store):
    with dask.config.set({"sfrdask.preprocess.pca.batch-mb": 0.05}):  # many partial_fit batches
        return fit_pca_store(store, "spectrum", zoom=3, n_components=8, progress=False)


def _train_matrix(store, g):
    train = selected_objects(store, "train")
    x = open_store(store, None, 3).spectrum.values[train].astype(float)
    return x, train


def test_incremental_fit_agrees_with_exact_pca(store, spectra_pca):
    g = spectra_pca
    assert g.attrs["batch_rows"] < g.attrs["n_train"], "the fit really was incremental"
    x, _ = _train_matrix(store, g)
    xs = np.nan_to_num((x - g["scaler_mean"].values) / g["scaler_scale"].values)
    exact = PCA(n_components=8).fit(xs)
    np.testing.assert_allclose(
        g["explained_variance_ratio"].values[:4], exact.explained_variance_ratio_[:4], atol=0.02
    )
    angles = np.degrees(subspace_angles(g["components"].values[:3].T, exact.components_[:3].T))
    assert angles.max() < 10, angles


def test_scaler_is_fitted_on_training_objects_only(store, spectra_pca):
    x, _ = _train_matrix(store, spectra_pca)
    np.testing.assert_allclose(spectra_pca["scaler_mean"].values, np.nanmean(x, axis=0), rtol=1e-6)
    everything = open_store(store, None, 3).spectrum.values[selected_objects(store)]
    all_mean = np.nanmean(everything, axis=0)
    assert np.max(np.abs(spectra_pca["scaler_mean"].values - all_mean) / np.abs(all_mean)) > 1e-3


def test_features_for_every_selected_object_and_reusable_transform(store, spectra_pca):
    stored = open_group(store, "pca/spectrum/3")
    idx = selected_objects(store)
    assert stored.features.shape == (idx.size, 8)
    x = open_store(store, None, 3).spectrum.values[idx]
    np.testing.assert_allclose(transform(x, stored), stored.features.values, rtol=1e-3, atol=1e-3)


def test_image_pca_uses_deblended_cutouts(store):
    from sfrdask.preprocessing import deblend_store

    deblend_store(store, zoom=3)
    g = fit_pca_store(store, "image", zoom=3, n_components=5, progress=False)
    assert g.attrs["source"] == "clean/3" and g.features.shape[1] == 5
    assert np.isfinite(g.features.values).all()
