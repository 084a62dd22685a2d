"""Reading HiSS-Cube files: layout, band mapping, NaN, distribution, and every bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from sfrdask import open_hisscube
from sfrdask.errors import HissCubeFormatError
from sfrdask.io.hisscube import describe
from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.h5 import parse_header
from sfrdask.io.hisscube.write import HissCubeWriter
from sfrdask.io.levels import BANDS, N_ZOOM, image_size, spectrum_samples


def write_small_cube(
    path: Path,
    orders: list[str],
    compression: str | None = None,
    nan: bool = False,
    spectra_per_target: int = 1,
    tai: dict[str, float] | None = None,
) -> Path:
    """One target per entry of ``orders`` (stored plane order, e.g. "urizg"); plane p of a target
    is filled with 1 + index of its band in ugriz, so the mapping can be checked exactly.
    ``tai``: each band's frame observation time (TAI header key), none by default."""
    n = len(orders)
    n_spec = n * spectra_per_target
    with HissCubeWriter(path, n, n_spec, 5 * n, compression=compression) as w:
        frames, fh = [], []
        for t, order in enumerate(orders):
            for b in order:
                frames.append(f"frame-{b}-{t}.fits")
                fh.append({"FILTER": b, "NAXIS1": 2048, "NAXIS2": 1489, "CRPIX1": 1024.0, "CD1_2": 1.1e-4})
                if tai is not None:
                    fh[-1]["TAI"] = 4.5e9 + 1000.0 * t + tai[b]
        w.write_image_headers(0, frames, fh)
        sp, sh = [], []
        for s in range(n_spec):
            sp.append(f"spec-{s}.fits")
            sh.append(
                {
                    "PLATEID": 300 + s,
                    "MJD": 51000 + s,
                    "FIBERID": 1 + s,
                    "PLUG_RA": 10.0 + s,
                    "PLUG_DEC": -1.0,
                    "RA": 9.0,
                    "DEC": -2.0,
                }
            )
        w.write_spectrum_headers(0, sp, sh)
        imgs, specs = [], []
        for z in range(N_ZOOM):
            s, m = image_size(z), spectrum_samples(z)
            d = np.empty((n, 5, s, s), np.float32)
            for t, order in enumerate(orders):
                for p, b in enumerate(order):
                    d[t, p] = 1 + BANDS.index(b)
            e = np.full_like(d, 0.1)
            f = np.tile(np.arange(m, dtype=np.float32), (n, 1)) + 1000 * np.arange(n)[:, None]
            fe = np.full_like(f, 0.5)
            if nan:
                d[0, 0, 0, 0] = np.nan
                fe[1, :10] = np.nan
            imgs.append((d, e))
            specs.append((f, fe))
        spec_index = [list(range(t * spectra_per_target, (t + 1) * spectra_per_target)) for t in range(n)]
        image_index = np.arange(5 * n).reshape(n, 5)
        w.write_targets(0, imgs, specs, spec_index, image_index)
    return path


def test_layout_matches_the_reference_structure(tmp_path):
    path = write_small_cube(tmp_path / "c.h5", ["ugriz"])
    with h5py.File(path, "r") as f:
        assert f.attrs["NX_class"] == "NXroot" and f.attrs["default"] == "/dense_cube"
        assert f["dense_cube"].attrs["target_count"] == 1
        for z in range(N_ZOOM):
            img = f[L.image_dataset(z)]
            assert img.chunks == (1, 5, image_size(z), image_size(z)) and img.dtype == np.float32
            assert f[img.attrs["error_ds"]].name == f"/{L.image_group(z)}/errors"
            assert f[L.image_group(z)]["image_metadata_refs"].shape == (1, 5, 200)
            assert f[L.spectrum_group(z)]["wl"] == f[f"semi_sparse_cube/{z}/spectra/wl"]  # hard link
            assert f[L.spectrum_dataset(z)].shape == (1, spectrum_samples(z))


@pytest.mark.parametrize("orders", [["ugriz"], ["urizg"], ["zigru", "urizg", "gzuir"]])
def test_planes_are_mapped_to_ugriz_through_filter(tmp_path, orders):
    ds = open_hisscube(write_small_cube(tmp_path / "c.h5", orders), image_zoom=1)
    assert list(ds.band.values) == list(BANDS)
    img = ds.image.values
    for i in range(5):
        np.testing.assert_array_equal(img[:, i], i + 1)


def test_band_mapping_on_the_synthetic_survey(cube, survey_dir):
    """Summed cutout flux per band follows each target's true magnitudes only if bands are right."""
    import pandas as pd

    truth = pd.read_csv(survey_dir / "truth_objects.csv")
    ds = open_hisscube(cube)
    total = ds.image.sum(("y", "x")).values
    bright = ((truth["class"] == "STAR") & (truth["mag_r"] < 18.5)).to_numpy()
    assert bright.sum() >= 10
    ratio = total[bright] / truth[[f"flux_{b}" for b in BANDS]].to_numpy()[bright]
    med = np.median(ratio, axis=0)
    assert np.all((med > 0.85) & (med < 1.15)), med
    with h5py.File(cube, "r") as f:
        stored = f[L.image_dataset(0)][:]
    assert not np.array_equal(stored, ds.image.values, equal_nan=True), "stored order must differ from ugriz"


def test_dataset_shape_coords_and_chunks(cube):
    ds = open_hisscube(cube, image_zoom=2, spectrum_zoom=0, chunks=50)
    assert ds.image.dims == ("object", "band", "y", "x") and ds.image.shape == (192, 5, 16, 16)
    assert ds.spectrum.shape == (192, 4620)
    assert ds.image.chunks[0] == (50, 50, 50, 42)
    assert ds.wavelength.attrs["units"] == "Angstrom" and ds.indexes["wavelength"].is_unique
    assert ds.wavelength.values[0] == pytest.approx(3839.7244)
    for c in ("PLATEID", "MJD", "FIBERID", "RA", "DEC", "Z", "CLASS", "spec_plateid"):
        assert c in ds.coords
    assert np.isfinite(ds.RA).all()
    auto = open_hisscube(cube)
    assert auto.image.chunks[0][0] > 1, "auto chunks group many objects"


def test_nan_is_kept_and_counted(tmp_path):
    ds = open_hisscube(write_small_cube(tmp_path / "c.h5", ["ugriz", "ugriz"], nan=True))
    assert np.isnan(ds.image.values[0, 0, 0, 0])
    assert ds.image_bad_fraction.values[0] == pytest.approx(1 / (5 * 64 * 64))
    assert np.isnan(ds.spectrum_error.values[1, :10]).all()
    assert ds.spectrum_bad_fraction.values[1] == pytest.approx(10 / 4620)
    assert ds.spectrum_bad_fraction.values[0] == 0


def test_graph_is_picklable_and_runs_on_a_distributed_cluster(cube, client):
    ds = open_hisscube(cube, image_zoom=1, spectrum_zoom=1, chunks=40)
    pickle.dumps(ds.image.data.__dask_graph__())  # no open h5py handle inside
    local = ds.image.sum().compute(scheduler="threads")
    remote = client.compute(ds.image.sum().data).result()
    assert float(remote) == pytest.approx(float(local), rel=1e-6)
    assert client.compute(ds.spectrum_bad_fraction.data).result().shape == (192,)


def test_xarray_engine(cube):
    a = xr.open_dataset(cube, engine="hisscube", image_zoom=3, spectrum_zoom=2)
    b = open_hisscube(cube, 3, 2)
    assert a.image.shape == (192, 5, 8, 8) and a.spectrum.shape == (192, 1155)
    np.testing.assert_array_equal(a.image.values, b.image.values)


def test_compressed_files_read_the_same(tmp_path):
    plain = open_hisscube(write_small_cube(tmp_path / "a.h5", ["izugr"]))
    gz = open_hisscube(write_small_cube(tmp_path / "b.h5", ["izugr"], compression="gzip"))
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert f[L.image_dataset(0)].compression == "gzip"
    np.testing.assert_array_equal(plain.image.values, gz.image.values)


def test_truncated_json_headers_and_several_spectra_per_target(tmp_path):
    """Real files: headers cut at the field length, and targets combining several spectra."""
    path = write_small_cube(tmp_path / "c.h5", ["urizg", "ugriz"], spectra_per_target=3)
    long = {"SIMPLE": True, "FILTER": "u", **{f"K{i:04d}": "x" * 40 for i in range(200)}}
    raw = json.dumps(long).encode()[: L.IMAGE_HEADER_BYTES]
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    with h5py.File(path, "r+") as f:
        md = f[f"{L.SPARSE}/0/images/metadata"]
        row = md[0]
        row["header"] = raw
        md[0] = row
    assert parse_header(raw)["FILTER"] == "u"
    ds = open_hisscube(path)
    np.testing.assert_array_equal(ds.image.values[0, 0], 1)
    assert ds.sizes["visit"] == 3
    np.testing.assert_array_equal(ds.spec_plateid.values[1], [303, 304, 305])
    assert ds.PLATEID.values[1] == 303 and ds.RA.values[1] == 13.0  # first spectrum's PLUG_RA


@pytest.mark.parametrize("compression", ["gzip", None])
def test_hisscube_byte_layout_and_targets_with_many_spectra(tmp_path, compression):
    """Uncompressed reference tables (HiSS-Cube's own layout) read like compressed ones, and a
    target with more spectra than the reader first looks at (4) keeps all of them."""
    import dask

    with dask.config.set({"sfrdask.io.reference-compression": compression}):
        path = write_small_cube(tmp_path / "c.h5", ["urizg", "ugriz"], spectra_per_target=6)
    with h5py.File(path, "r") as f:
        refs = f[f"{L.spectrum_group(0)}/spec_metadata_refs"]
        assert refs.compression == compression and refs.chunks == (1, L.MAX_REFS)
        assert f[f"{L.image_group(0)}/image_metadata_refs"].chunks == (1, 5, L.MAX_REFS)
    ds = open_hisscube(path)
    assert ds.sizes["visit"] == 6
    np.testing.assert_array_equal(ds.spec_plateid.values[1], np.arange(306, 312))
    np.testing.assert_array_equal(ds.image.values[:, :, 0, 0], [[1, 2, 3, 4, 5]] * 2)


def test_describe(cube):
    info = describe(cube)
    assert info["targets"] == 192 and info["zoom_levels"] == [0, 1, 2, 3]
    assert sorted(info["stored_band_order"]) == sorted("ugriz")
    assert 0 < info["levels"][0]["spectrum_nan_fraction"] < 0.05


# -- bad input ----------------------------------------------------------------------------------


def test_not_hdf5(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("not hdf5")
    with pytest.raises(HissCubeFormatError, match=r"notes\.h5: not an HDF5 file"):
        open_hisscube(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        open_hisscube(tmp_path / "nope.h5")


def test_truncated_file(tmp_path):
    p = write_small_cube(tmp_path / "c.h5", ["ugriz"])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(HissCubeFormatError, match=r"c\.h5"):
        open_hisscube(p)


def test_no_dense_cube(tmp_path):
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(HissCubeFormatError, match="no /dense_cube group"):
        open_hisscube(p)


def test_missing_zoom_level(tmp_path):
    p = write_small_cube(tmp_path / "c.h5", ["ugriz"])
    with h5py.File(p, "r+") as f:
        del f["dense_cube/2"]
    open_hisscube(p, 1, 3)
    with pytest.raises(
        HissCubeFormatError, match=r"image zoom level 2 not found .*levels present: \[0, 1, 3\]"
    ):
        open_hisscube(p, 2, 0)


def test_shape_disagreement(tmp_path):
    p = write_small_cube(tmp_path / "c.h5", ["ugriz"])
    with h5py.File(p, "r+") as f:
        del f[f"{L.spectrum_group(1)}/errors"]
        f[f"{L.spectrum_group(1)}/errors"] = np.zeros((1, 100), np.float32)
    with pytest.raises(HissCubeFormatError, match=r"errors has shape \(1, 100\) but .* has \(1, 2310\)"):
        open_hisscube(p, 0, 1)


def test_missing_filter_needs_explicit_band_order(tmp_path):
    p = write_small_cube(tmp_path / "c.h5", ["urizg"])
    with h5py.File(p, "r+") as f:
        md = f[f"{L.SPARSE}/0/images/metadata"]
        rows = md[:]
        rows["header"] = b"{}"
        md[:] = rows
    with pytest.raises(HissCubeFormatError, match="FILTER"):
        open_hisscube(p)
    ds = open_hisscube(p, band_order="urizg")
    np.testing.assert_array_equal(ds.image.values[0, :, 0, 0], [1, 2, 3, 4, 5])
