"""A new input format in one module and one table row: a cube kept as a directory of NumPy files,
read by a module written here alone and registered in :data:`sfrdask.io.formats.FORMATS`, ingests
into the same store as the HiSS-Cube file it was made from, and the study's level check reads it,
with no file of sfrdask touched (issue 36: a new input format is one backend module)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import xarray as xr

import sfrdask
from sfrdask.io.formats import FORMATS, format_of
from tests.stages.test_a_new_stage import _package_files

# the whole format: how to recognise it, its metadata, one level as open_hisscube's Dataset
MODULE = '''
"""A cube as a directory of NumPy files: meta.npz (per-object coordinates) and, per zoom level,
image{z}.npz (image, image_error) and spectrum{z}.npz (spectrum, spectrum_error, wavelength)."""

from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

COORDS = ("PLATEID", "MJD", "FIBERID", "RA", "DEC", "Z", "CLASS")
VISITS = ("spec_plateid", "spec_mjd", "spec_fiberid")


def recognises(path):
    return Path(path).is_dir() and (Path(path) / "meta.npz").exists()


def read_metadata(path, image_zoom=0, spectrum_zoom=0):
    with np.load(Path(path) / "meta.npz") as f:
        return {k: f[k] for k in f.files}


def levels(path):
    return sorted(int(p.stem[5:]) for p in Path(path).glob("image*.npz"))


def check_levels(path, image_zooms, spectrum_zooms):
    missing = sorted((set(image_zooms) | set(spectrum_zooms)) - set(levels(path)))
    if missing:
        raise ValueError(f"{path}: no zoom level {missing[0]} (levels present: {levels(path)})")


def open_dataset(path, image_zoom=0, spectrum_zoom=0, chunks="auto", metadata=None):
    meta = metadata or read_metadata(path)
    img = np.load(Path(path) / f"image{image_zoom}.npz")
    spec = np.load(Path(path) / f"spectrum{spectrum_zoom}.npz")
    lazy = {k: da.from_array(v[k], chunks=(8,) + v[k].shape[1:])
            for v in (img, spec) for k in v.files if k != "wavelength"}
    dims_i, dims_s = ("object", "band", "y", "x"), ("object", "wavelength")
    data = {k: (dims_i if k.startswith("image") else dims_s, v) for k, v in lazy.items()}
    data["image_bad_fraction"] = ("object", da.isnan(lazy["image"]).mean(axis=(1, 2, 3)).astype(np.float32))
    data["spectrum_bad_fraction"] = ("object", da.isnan(lazy["spectrum"]).mean(axis=1).astype(np.float32))
    n = lazy["image"].shape[0]
    coords = {"object": np.arange(n), "band": list("ugriz"),
              "wavelength": ("wavelength", spec["wavelength"], {"units": "Angstrom"})}
    coords |= {k: ("object", meta[k]) for k in COORDS} | {k: (("object", "visit"), meta[k]) for k in VISITS}
    return xr.Dataset(data, coords, {"zoom_levels_present": levels(path)})
'''


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("format") / "survey"
    return sfrdask.synth(d, objects=24, seed=4, client="synchronous")


def _as_npz(cube, out):
    """The HiSS-Cube file's levels 2 and 3 written as the new format's files."""
    out.mkdir()
    for z in (2, 3):
        ds = sfrdask.open_hisscube(cube, z, z).compute()
        np.savez(out / f"image{z}.npz", image=ds.image.values, image_error=ds.image_error.values)
        np.savez(out / f"spectrum{z}.npz", spectrum=ds.spectrum.values,
                 spectrum_error=ds.spectrum_error.values, wavelength=ds.wavelength.values)  # fmt: skip
    keys = ("PLATEID", "MJD", "FIBERID", "RA", "DEC", "Z", "CLASS", "spec_plateid", "spec_mjd",
            "spec_fiberid")  # fmt: skip
    np.savez(out / "meta.npz", **{k: ds[k].values for k in keys})
    return out


def test_a_format_added_in_one_module_ingests_as_the_cube_it_came_from(survey, tmp_path, monkeypatch):
    package = _package_files()
    where = tmp_path / "plugins"
    where.mkdir()
    (where / "npz_format.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.setitem(FORMATS, "npz-directory", "npz_format")  # the one table row
    cube_dir = _as_npz(survey.cube, tmp_path / "cube.npz.d")
    assert format_of(cube_dir).__name__ == "npz_format"
    assert format_of(survey.cube).__name__ == "sfrdask.io.hisscube"

    kw = dict(catalog=survey.cube.parent, image_zooms=[3, 2], spectrum_zooms=[3], client="synchronous")
    a = sfrdask.ingest(survey.cube, tmp_path / "from_h5.zarr", **kw).store
    b = sfrdask.ingest(cube_dir, tmp_path / "from_npz.zarr", **kw).store
    for zi in (3, 2):
        x = sfrdask.open_store(a, image_zoom=zi, spectrum_zoom=3)
        y = sfrdask.open_store(b, image_zoom=zi, spectrum_zoom=3)
        for v in ("image", "image_error", "spectrum", "spectrum_error", "AVG", "FLAG", "Z", "RA"):
            assert np.array_equal(x[v].values, y[v].values, equal_nan=True), (zi, v)
        xr.testing.assert_identical(x.wavelength, y.wavelength)

    # the study's check before any work reads the format's own levels
    from sfrdask.stages import get_stage

    params = get_stage("study").params
    with pytest.raises(ValueError, match="no zoom level 0"):
        params(cube=cube_dir, catalog=survey.cube.parent, out=tmp_path / "s", image_zooms=(0, 3)).check()
    assert _package_files() == package  # no file of sfrdask written
