from __future__ import annotations

import dask
import pytest

from sfrdask import read_catalog_dir, write_store
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects


@pytest.fixture(scope="package")
def store(cube, survey_dir, tmp_path_factory):
    """A preprocessed store: images at zooms 0 (several chunks), 2, 3 and spectra at 2, 3; deblended and
    PCA'd at zoom 3."""
    out = tmp_path_factory.mktemp("train") / "s.zarr"
    with dask.config.set({"scheduler": "threads", "sfrdask.store.chunk-mb": 1}):
        write_store(
            cube, out, catalog=read_catalog_dir(survey_dir), image_zooms=(0, 2, 3), spectrum_zooms=(2, 3)
        )
        select_objects(out)
        deblend_store(out, 3)
        fit_pca_store(out, "image", 3, n_components=12, progress=False)
        fit_pca_store(out, "spectrum", 3, n_components=8, progress=False)
    return out
