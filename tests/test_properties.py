"""Property-based bad input (hypothesis): whatever is thrown at the readers, only sfrdask's documented
exceptions (SfrdaskError and its subclasses, FileNotFoundError) come out, never a crash from deep
inside, and valid-but-odd values (NaN, inf, duplicates) are handled as documented."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dask
import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfrdask import config, join_labels, open_hisscube, read_mpajhu
from sfrdask.config import ConfigError
from sfrdask.errors import SfrdaskError
from sfrdask.io.catalog import GAL_INFO_NAME, TOTSFR_NAME, write_fits_table
from sfrdask.io.fits import FitsError, read_spectrum, scan_spectrum
from sfrdask.io.hisscube import layout as L
from sfrdask.pipeline import load_run_config
from tests.conftest import SHARED

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases on every run: a failure reproduces
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
KNOWN_KEYS = [
    "io.band-order", "store.chunk-mb", "train.epochs", "train.batch-size", "train.learning-rate",
    "preprocess.flag", "preprocess.max-bad-fraction", "preprocess.pca.image-components", "cluster.kind",
    "cluster.slurm.cores", "cluster.slurm.memory", "synth.objects", "train.ddp.timeout",
]  # fmt: skip


def _tmp(tmp_path: Path) -> Path:
    d = tmp_path / uuid.uuid4().hex[:8]  # hypothesis reuses the function's tmp_path across examples
    d.mkdir()
    return d


# -- the config loader ---------------------------------------------------------------------------
@FUZZ
@given(key=st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=20)), value=VALUES)
def test_config_validate_accepts_or_names_the_key(key, value):
    try:
        with dask.config.set({f"sfrdask.{key}": value}):
            config.validate()
    except ConfigError as e:
        assert "sfrdask." in str(e) or key.split(".")[0] in str(e)
    except ValueError as e:  # dask itself refuses some keys (e.g. empty path parts) before sfrdask sees them
        pytest.skip(f"dask.config rejects {key!r}: {e}")


@FUZZ
@given(doc=st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=8), VALUES, max_size=5)))
def test_run_files_are_loaded_or_refused_by_name(tmp_path, doc):
    path = _tmp(tmp_path) / "run.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    try:
        cfg = load_run_config(path)
    except ConfigError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(cfg, dict)


# -- the HiSS-Cube reader ---------------------------------------------------------------------------
REQUIRED = [
    L.image_dataset(0), f"{L.image_group(0)}/errors", L.spectrum_dataset(0), f"{L.spectrum_group(0)}/errors",
    f"{L.spectrum_group(0)}/spec_metadata_refs", f"{L.image_group(0)}/image_metadata_refs",
    "semi_sparse_cube/0/spectra/metadata", "semi_sparse_cube/0/images/metadata", L.DENSE,
]  # fmt: skip


def _read_all(path: Path) -> None:
    ds = open_hisscube(path, 0, 0)
    with dask.config.set(scheduler="synchronous"):
        ds.image.sum().compute()
        ds.spectrum.sum().compute()


@FUZZ
@given(
    damage=st.sampled_from(["delete", "truncate", "values", "dtype", "shape"]),
    which=st.integers(0, len(REQUIRED) - 1),
    where=st.floats(0.0, 1.0),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 1e38, -1e38, 0.0]),
)
def test_damaged_cubes_give_documented_errors(cube, tmp_path, damage, which, where, value):
    path = _tmp(tmp_path) / "cube.h5"
    shutil.copy(cube, path)
    name = REQUIRED[which]
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * where)])
    else:
        with h5py.File(path, "r+") as f:
            if damage == "delete":
                del f[name]
            elif damage == "values":
                ds = f[L.image_dataset(0)]
                k = int(where * (ds.shape[0] - 1))
                ds[k, :, :8, :8] = value
                f[L.spectrum_dataset(0)][k, :50] = value
            elif isinstance(f[name], h5py.Dataset):
                shape = f[name].shape
                del f[name]
                if damage == "dtype":
                    f[name] = np.array(["x"] * shape[0], dtype="S1")
                else:
                    f[name] = np.zeros((max(shape[0] - 1, 1), 3), np.float32)
    try:
        _read_all(path)
    except SfrdaskError as e:
        assert str(path) in str(e)
    else:  # only an intact structure may read; NaN/inf values are data, and stay visible
        assert damage in ("values", "truncate") or (name == L.DENSE and damage != "delete"), (damage, name)
        if damage == "values" and not np.isfinite(value):
            ds = open_hisscube(path, 0, 0)
            k = int(where * (ds.sizes["object"] - 1))
            assert not np.isfinite(ds.image.values[k]).all()


# -- the catalogue join ---------------------------------------------------------------------------
@FUZZ
@given(
    n=st.integers(1, 30),
    dup=st.integers(0, 5),
    missing=st.sampled_from([None, "AVG", "FLAG", "PLATEID", "MJD"]),
    extra_rows=st.integers(0, 2),
    avg=st.lists(st.one_of(st.floats(-3, 3), st.just(-99.0), st.just(np.nan), st.just(np.inf)), min_size=1),
)
def test_catalogue_tables_join_or_are_refused(cube, tmp_path, n, dup, missing, extra_rows, avg):
    d = _tmp(tmp_path)
    ds = open_hisscube(cube, 3, 3)
    plate, mjd, fiber = (ds[k].values for k in ("PLATEID", "MJD", "FIBERID"))
    rows = np.arange(n) % len(plate)
    rows = np.concatenate([rows, rows[:dup]])  # duplicate keys
    info = {"PLATEID": plate[rows].astype(np.int32), "MJD": mjd[rows].astype(np.int32),
            "FIBERID": fiber[rows].astype(np.int32), "Z": np.full(rows.size, 0.1)}  # fmt: skip
    values = np.resize(np.array(avg, float), rows.size + extra_rows)
    sfr = {"AVG": values, "FLAG": np.zeros(values.size, np.int32)}
    for table in (info, sfr):
        table.pop(missing, None)
    write_fits_table(d / GAL_INFO_NAME, info)
    write_fits_table(d / TOTSFR_NAME, sfr)
    try:
        cat = read_mpajhu(d / GAL_INFO_NAME, d / TOTSFR_NAME)
        out = join_labels(ds, cat)
    except SfrdaskError as e:
        assert GAL_INFO_NAME in str(e) or TOTSFR_NAME in str(e) or "catalog" in str(e).lower()
        assert missing is not None or extra_rows > 0 or dup > 0
    else:
        assert missing is None and extra_rows == 0
        got = out.AVG.values
        assert not np.any(got <= -99)  # the catalogue's -99 becomes NaN
        assert set(np.unique(out.FLAG.values)) <= {-1, 0}


# -- the FITS builder's readers ---------------------------------------------------------------------------
SPEC = SHARED / "spectra" / "spec-0412-51871-0308.fits"


@FUZZ
@given(cut=st.floats(0.0, 0.999))
def test_truncated_spectra_are_refused_with_their_name(tmp_path, cut):
    path = _tmp(tmp_path) / SPEC.name
    data = SPEC.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    scan = scan_spectrum(path)
    if scan["ok"]:  # the cut left every needed HDU whole
        assert read_spectrum(path)[0].shape == (4620,)
    else:
        assert str(path) in scan["reason"]
        with pytest.raises(FitsError, match=path.name):
            read_spectrum(path)


@FUZZ
@given(
    k=st.integers(0, 3000),
    n=st.integers(1, 800),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30]),
    column=st.sampled_from(["flux", "ivar"]),
)
def test_spectra_with_odd_values_stay_finite_or_nan(tmp_path, k, n, value, column):
    from astropy.io import fits

    path = _tmp(tmp_path) / SPEC.name
    with fits.open(SPEC) as hdul:
        hdul[1].data[column][k : k + n] = value
        hdul.writeto(path)
    flux, err = read_spectrum(path)
    assert flux.shape == err.shape == (4620,)
    assert not np.isinf(err).any()
    assert (np.isnan(flux) == np.isnan(err)).all()
    if column == "ivar" and value <= 0 and n >= 20:  # ivar <= 0: no measurement, so NaN there
        assert np.isnan(flux).any()
