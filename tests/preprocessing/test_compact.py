"""The compact copy of the selection: same data as the full groups, read instead of them by
deblending, PCA and training, and ignored once the selection changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from sfrdask.io.store import open_group, open_store
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects, write_compact
from sfrdask.preprocessing.compact import compact_group
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.training.data import StoreDataset, input_sources


@pytest.fixture(scope="module")
def pair(store, tmp_path_factory):
    """The module's store (no compact copy) and a copy of it with one."""
    compact = tmp_path_factory.mktemp("compact") / "c.zarr"
    shutil.copytree(store, compact)
    for g in ("clean", "pca", "selected"):
        shutil.rmtree(compact / g, ignore_errors=True)
    assert write_compact(compact) == [
        "selected/image/0", "selected/image/3", "selected/spectrum/1", "selected/spectrum/3",
    ]  # fmt: skip
    return store, compact


def test_compact_groups_hold_exactly_the_selected_rows(pair):
    _, store = pair
    idx = selected_objects(store)
    for modality, z, names in (("image", 0, ["image"]), ("spectrum", 1, ["spectrum", "spectrum_error"])):
        g = open_group(store, compact_group(store, modality, z))
        np.testing.assert_array_equal(g.object.values, idx)
        kw = {"image_zoom": None, "spectrum_zoom": None, f"{modality}_zoom": z}
        full = open_store(store, **kw).isel(object=idx)
        for name in names:
            np.testing.assert_array_equal(g[name].values, full[name].values)
            arr = zarr.open_array(store / f"selected/{modality}/{z}" / name, mode="r", zarr_format=3)
            assert arr.chunks[0] == g[name].encoding["chunks"][0]  # one dask chunk per zarr chunk


def test_deblending_reads_the_compact_copy_with_the_same_result(pair):
    full_store, store = pair
    a = deblend_store(full_store, zoom=3)
    b = deblend_store(store, zoom=3)
    idx = selected_objects(store)
    assert b.sizes["object"] == idx.size and a.sizes["object"] > idx.size
    np.testing.assert_array_equal(b.object.values, idx)
    for v in ("image", "mask", "central_found", "n_sources"):
        np.testing.assert_array_equal(a[v].sel(object=idx).values, b[v].values, err_msg=v)


def test_pca_and_training_inputs_read_the_compact_copy(pair):
    full_store, store = pair
    for s in (full_store, store):
        fit_pca_store(s, "spectrum", 3, n_components=4, progress=False)
    a = xr.open_zarr(full_store, group="pca/spectrum/3", zarr_format=3, consolidated=False)
    b = xr.open_zarr(store, group="pca/spectrum/3", zarr_format=3, consolidated=False)
    assert a.attrs["source"] == b.attrs["source"] == "spectrum/3"
    np.testing.assert_allclose(a.components.values, b.components.values, rtol=1e-6, atol=1e-9)

    src = input_sources(store, ("image", "spectrum"), 3, 3)
    assert src["image"].group == "clean/3" and src["spectrum"].group == "selected/spectrum/3"
    assert input_sources(full_store, ("spectrum",), None, 3)["spectrum"].group == "spectrum/3"
    objs = selected_objects(store, "train")
    y = np.zeros(objs.size)
    got = StoreDataset(store, objs, src, y, cache_mb=1).raw_block(0)
    full_src = input_sources(full_store, ("image", "spectrum"), 3, 3)
    want = StoreDataset(full_store, objs, full_src, y, cache_mb=1).raw_block(0)
    n = len(got["spectrum"])
    np.testing.assert_array_equal(got["spectrum"], want["spectrum"][:n])
    np.testing.assert_array_equal(got["image"], want["image"][:n])


def test_a_compact_copy_of_another_selection_is_ignored(pair, tmp_path):
    _, store = pair
    other = tmp_path / "o.zarr"
    shutil.copytree(store, other)
    select_objects(other, max_bad_fraction=0.0)  # a stricter cut: fewer objects
    assert compact_group(other, "image", 0) is None
    assert input_sources(other, ("spectrum",), None, 1)["spectrum"].group == "spectrum/1"
