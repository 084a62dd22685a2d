"""The zarr hand-off store: round trip, chunk alignment, provenance, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from sfrdask import join_labels, open_hisscube, open_store, read_catalog_dir, write_store
from sfrdask.errors import StoreError
from sfrdask.io import store as store_mod
from sfrdask.io.atomic import OutputExistsError


@pytest.fixture(scope="module")
def store(cube, survey_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "s.zarr"
    return write_store(
        cube, out, catalog=read_catalog_dir(survey_dir), image_zooms=(0, 3), spectrum_zooms=(1, 2)
    )


def test_round_trip_equals_the_cube(store, cube, survey_dir):
    ref = join_labels(open_hisscube(cube, 3, 2), read_catalog_dir(survey_dir))
    got = open_store(store, image_zoom=3, spectrum_zoom=2)
    for v in ("image", "image_error", "spectrum", "spectrum_error", "image_bad_fraction", "AVG", "FLAG"):
        np.testing.assert_array_equal(got[v].values, ref[v].values, err_msg=v)
    np.testing.assert_array_equal(got.band.values, ref.band.values)
    np.testing.assert_array_equal(got.wavelength.values, ref.wavelength.values)
    np.testing.assert_array_equal(got.CLASS.values, ref.CLASS.values)


def test_zarr_chunks_match_dask_chunks_and_are_large(store):
    g = zarr.open_group(store, mode="r")
    for kind, z, var in (("image", 0, "image"), ("image", 3, "image"), ("spectrum", 1, "spectrum")):
        arr = g[f"{kind}/{z}/{var}"]
        ds = open_store(
            store, image_zoom=z if kind == "image" else None, spectrum_zoom=z if kind == "spectrum" else None
        )
        assert ds[var].data.chunksize == arr.chunks
        chunk_bytes = np.prod(arr.chunks) * arr.dtype.itemsize
        assert chunk_bytes >= 2**20 or arr.chunks[0] == arr.shape[0]
        assert all(c == arr.shape[i] for i, c in enumerate(arr.chunks) if i > 0), "chunked along object only"


def test_provenance(store, cube):
    attrs = zarr.open_group(store, mode="r").attrs
    assert attrs["sfrdask_store"] and attrs["source"] == str(cube.resolve())
    assert attrs["image_zooms"] == [0, 3] and attrs["spectrum_zooms"] == [1, 2]
    assert attrs["labels_flag0_objects"] > 0 and attrs["catalog"].endswith("gal_info_dr7_v5_2.fit")


def test_levels_not_in_store(store):
    """The error says how to add the level: ingest again with it, then preprocess."""
    said = r"image zoom level 1 not in the store \(levels present: \[0, 3\]\)"
    with pytest.raises(StoreError, match=said) as e:
        open_store(store, image_zoom=1)
    fix = f"--out {store} --image-zooms 0,1,3 --overwrite`, then `sfrdask preprocess {store}`"
    assert fix in str(e.value)


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        open_store(tmp_path / "missing.zarr")
    zarr.open_group(tmp_path / "other.zarr", mode="w")
    with pytest.raises(StoreError, match="not an sfrdask store"):
        open_store(tmp_path / "other.zarr")


def test_existing_store_is_not_overwritten_by_default(store, cube):
    with pytest.raises(OutputExistsError, match="exists"):
        write_store(cube, store)


def test_failed_write_leaves_nothing_that_looks_complete(tmp_path, cube, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(store_mod, "_compute", boom)
    with pytest.raises(RuntimeError):
        write_store(cube, tmp_path / "new.zarr", image_zooms=(3,), spectrum_zooms=(3,))
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_previous_store(tmp_path, cube, monkeypatch):
    out = write_store(cube, tmp_path / "s.zarr", image_zooms=(3,), spectrum_zooms=())
    before = open_store(out, image_zoom=3, spectrum_zoom=None).image.values
    monkeypatch.setattr(store_mod, "_compute", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_store(cube, out, image_zooms=(2,), spectrum_zooms=(), overwrite=True)
    np.testing.assert_array_equal(open_store(out, image_zoom=3, spectrum_zoom=None).image.values, before)
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_ingest_on_a_distributed_cluster(client, cube, tmp_path):
    out = write_store(cube, tmp_path / "d.zarr", image_zooms=(2,), spectrum_zooms=(3,), client=client)
    ref = open_hisscube(cube, 2, 3)
    got = open_store(out, 2, 3)
    np.testing.assert_array_equal(got.image.values, ref.image.values)
    np.testing.assert_array_equal(got.spectrum.values, ref.spectrum.values)
