"""Read the dense cube of a HiSS-Cube file (DATASET or TREE layout) as a lazy ``xarray.Dataset``.

``open_hisscube(path, image_zoom, spectrum_zoom)`` gives::

    image(object, band, y, x), image_error      float32, bands re-ordered to u, g, r, i, z
    spectrum(object, wavelength), spectrum_error float32, erg s^-1 cm^-2 A^-1
    image_bad_fraction(object), spectrum_bad_fraction(object)   share of NaN samples (lazy)
    coords: band, wavelength [A], PLATEID, MJD, FIBERID (first spectrum of the target),
            spec_plateid/spec_mjd/spec_fiberid(object, spectrum) (every spectrum), RA, DEC,
            Z, CLASS (when the spectrum headers carry them; otherwise filled by the catalogue join)

Arrays are dask arrays over many objects per chunk. Each task opens the file itself, so no
h5py handle enters the graph and it runs on any distributed cluster. NaN stays NaN.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import h5py
import numpy as np
import xarray as xr
from xarray.backends import BackendEntrypoint

from sfrdask import config
from sfrdask.errors import HissCubeFormatError
from sfrdask.io.bands import check_dataset
from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.h5 import check_layout, fail, open_h5, zooms
from sfrdask.io.hisscube.meta import read_target_metadata
from sfrdask.io.levels import BANDS, N_ZOOM, check_zoom, stored_wavelengths, wavelength_grid


class _H5Pair:
    """A picklable, lazily read ``(n, 2, ...)`` stack of a dataset and its errors.

    One task opens the file once and reads both, so data and errors of a chunk are born on the
    same worker (nothing moves between workers to mask or write them) and no h5py handle is
    ever pickled.
    """

    def __init__(self, path: str, data: str, errors: str, shape: tuple[int, ...]):
        self.path, self.names = path, (data, errors)
        self.shape = (shape[0], 2, *shape[1:])
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple) -> np.ndarray:
        key = key + (slice(None),) * (self.ndim - len(key))
        if not all(isinstance(k, slice) for k in key):
            raise TypeError(f"only slices are supported, got {key!r}")
        shape = tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=True))
        out = np.empty(shape, self.dtype)
        src = (key[0], *key[2:])
        with h5py.File(self.path, "r") as f:
            for j, i in enumerate(range(2)[key[1]]):
                # plain read, then one copy: HDF5's read_direct into a strided view is ~100x slower
                out[:, j] = f[self.names[i]][src]
        return out


def _lazy_pair(path: Path, data: str, errors: str, shape: tuple, k: int, token: str) -> da.Array:
    src = _H5Pair(str(path), data, errors, shape)
    chunks = (k, 2, *shape[1:])
    return da.from_array(
        src,
        chunks=chunks,
        asarray=True,
        fancy=False,
        lock=False,
        name=f"hisscube-{dask.base.tokenize(token, data, errors, k)}",
    )


def _reorder(block: np.ndarray, plane_of_band: np.ndarray) -> np.ndarray:
    """Planes into u, g, r, i, z; a band without a stored plane (-1) reads as NaN."""
    out = np.take_along_axis(block, np.maximum(plane_of_band, 0), axis=2)
    missing = plane_of_band < 0
    return np.where(missing, np.float32(np.nan), out) if missing.any() else out


def objects_per_chunk(chunks: int | str | dict | None, bytes_per_object: int) -> int:
    """Objects per dask chunk: an int, {"object": n}, or "auto" (``sfrdask.io.chunk-mb``)."""
    if isinstance(chunks, dict):
        chunks = chunks.get("object", "auto")
    if chunks in (None, "auto", -1):
        target = float(config.get("io.chunk-mb")) * 2**20
        return max(1, int(target // max(bytes_per_object, 1)))
    if isinstance(chunks, int | np.integer) and chunks > 0:
        return int(chunks)
    raise ValueError(f"chunks must be a positive int, 'auto' or {{'object': n}}, got {chunks!r}")


def _wavelengths(f: h5py.File, zoom: int, n: int) -> np.ndarray:
    """The wavelength coordinate. Stored values are float-compressed (so not unique): when they
    agree with the standard grid, the exact grid is rebuilt; otherwise the stored range is used."""
    for name in (f"{L.spectrum_group(zoom)}/wl", f"{L.SPARSE}/{zoom}/spectra/wl"):
        if name in f:
            stored = f[name][...].astype(np.float64)
            break
    else:
        stored = None
    if n == wavelength_grid(zoom).size:
        if stored is None or np.allclose(stored, stored_wavelengths(zoom), rtol=0, atol=1e-3):
            return wavelength_grid(zoom)
    if stored is None or stored.size != n:
        raise HissCubeFormatError(
            f"{f.filename}: wavelength dataset for spectrum zoom {zoom} missing or not of length {n}"
        )
    if np.all(np.diff(stored) > 0):
        return stored
    return np.linspace(stored[0], stored[-1], n)


def open_hisscube(
    path: str | Path,
    image_zoom: int = 0,
    spectrum_zoom: int = 0,
    chunks: int | str | dict | None = "auto",
    band_order: str | None = None,
    metadata: dict[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Open the dense cube of a HiSS-Cube file as a lazy, dask-backed Dataset.

    Image and spectrum zoom levels are chosen independently (0 = 64 px / 4620 samples ... 3 = 8 px /
    577 samples). ``band_order`` overrides the FILTER look-up (e.g. ``"urizg"``) for files whose
    frame headers are missing. ``metadata`` reuses a ``read_target_metadata`` result (several
    levels of one file share it).
    """
    check_zoom(image_zoom)
    check_zoom(spectrum_zoom)
    path = Path(path).resolve()
    meta = metadata or read_target_metadata(path, image_zoom, spectrum_zoom, band_order)
    with open_h5(path) as f:
        shapes = check_layout(f, path, image_zoom, spectrum_zoom)
        n, _, s, _ = shapes["image"]
        m = shapes["spectrum"][1]
        wl = _wavelengths(f, spectrum_zoom, m)
        available = zooms(f)
    per_object = 2 * 4 * max(5 * s * s, m)
    k = min(max(n, 1), objects_per_chunk(chunks, per_object))
    st = os.stat(path)
    token = f"{path}:{st.st_size}:{st.st_mtime_ns}"

    pob = da.from_array(meta["plane_of_band"][:, None, :, None, None], chunks=(k, 1, 5, 1, 1))
    img_pair = _lazy_pair(
        path, L.image_dataset(image_zoom), f"{L.image_group(image_zoom)}/errors", (n, 5, s, s), k, token
    )
    img_pair = da.map_blocks(_reorder, img_pair, pob, dtype=np.float32)
    spec_pair = _lazy_pair(
        path, L.spectrum_dataset(spectrum_zoom), f"{L.spectrum_group(spectrum_zoom)}/errors", (n, m), k, token
    )
    img_bad = da.isnan(img_pair).any(axis=1).mean(axis=(1, 2, 3))
    spec_bad = da.isnan(spec_pair).any(axis=1).mean(axis=1)

    stored_orders = Counter(
        "".join(BANDS[list(r).index(p)] if p in r else "-" for p in range(5))
        for r in meta["plane_of_band"][: min(n, 10_000)]
    )
    unit = "erg s-1 cm-2 Angstrom-1"
    dims_i, dims_s = ("object", "band", "y", "x"), ("object", "wavelength")
    ds = xr.Dataset(
        {
            "image": (dims_i, img_pair[:, 0], {"units": unit, "long_name": "image cutout flux density"}),
            "image_error": (dims_i, img_pair[:, 1], {"units": unit}),
            "spectrum": (
                dims_s,
                spec_pair[:, 0],
                {"units": unit, "long_name": "spectral flux density"},
            ),
            "spectrum_error": (dims_s, spec_pair[:, 1], {"units": unit}),
            "image_bad_fraction": (
                "object",
                img_bad.astype(np.float32),
                {"long_name": "fraction of NaN image or error pixels"},
            ),
            "spectrum_bad_fraction": (
                "object",
                spec_bad.astype(np.float32),
                {"long_name": "fraction of NaN spectrum or error samples"},
            ),
        },
        coords=_coords(meta, n, wl),
        attrs={
            "source": str(path),
            "format": f"HiSS-Cube {meta.get('layout', 'DATASET')} layout, dense cube",
            "image_zoom": image_zoom,
            "spectrum_zoom": spectrum_zoom,
            "zoom_levels_present": available,
            "stored_band_order": stored_orders.most_common(1)[0][0] if n else "",
        },
    )
    return ds


def _coords(meta: dict[str, np.ndarray], n: int, wl: np.ndarray) -> dict[str, Any]:
    """Per object: its spectra's PLATEID/MJD/FIBERID (the first, and every visit), RA/Dec, Z, CLASS;
    the band and wavelength axes."""
    return {
        "object": np.arange(n),
        "band": list(BANDS),
        "wavelength": ("wavelength", wl, {"units": "Angstrom"}),
        "PLATEID": ("object", meta["spec_plateid"][:, 0]),
        "MJD": ("object", meta["spec_mjd"][:, 0]),
        "FIBERID": ("object", meta["spec_fiberid"][:, 0]),
        "spec_plateid": (("object", "visit"), meta["spec_plateid"]),
        "spec_mjd": (("object", "visit"), meta["spec_mjd"]),
        "spec_fiberid": (("object", "visit"), meta["spec_fiberid"]),
        "RA": ("object", meta["RA"], {"units": "deg", "long_name": "PLUG_RA of the first spectrum"}),
        "DEC": ("object", meta["DEC"], {"units": "deg", "long_name": "PLUG_DEC of the first spectrum"}),
        "Z": ("object", meta["Z"]),
        "CLASS": ("object", meta["CLASS"]),
    }


class HissCubeBackendEntrypoint(BackendEntrypoint):
    """``xr.open_dataset(path, engine="hisscube", image_zoom=..., spectrum_zoom=...)``."""

    description = "Dense cube of a HiSS-Cube HDF5 file (DATASET or TREE layout), via sfrdask"
    url = "https://github.com/nadvornikjiri/HiSS-Cube"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "image_zoom",
        "spectrum_zoom",
        "object_chunks",
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Any = None,
        image_zoom: int = 0,
        spectrum_zoom: int = 0,
        object_chunks: int | str = "auto",
    ) -> xr.Dataset:
        ds = open_hisscube(filename_or_obj, image_zoom, spectrum_zoom, chunks=object_chunks)
        return ds.drop_vars(drop_variables or [], errors="ignore")

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            with h5py.File(filename_or_obj, "r") as f:
                return L.DENSE in f
        except Exception:
            return False


def describe(path: str | Path, metadata: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Facts about a file for ``sfrdask info``: levels, counts, band order, NaN fractions.

    The per-target headers are read once (or taken from ``metadata``) and shared by all levels.
    """
    path = Path(path)
    with open_h5(path) as f:
        if L.DENSE not in f:
            raise fail(path, f"no /{L.DENSE} group: not a HiSS-Cube file with a dense cube")
        levels = zooms(f)
        info: dict[str, Any] = {
            "file": str(path),
            "size_mb": round(path.stat().st_size / 2**20, 1),
            "targets": int(f[L.DENSE].attrs.get("target_count", -1)),
            "image_count": int(f.attrs.get("image_count", -1)),
            "spectrum_count": int(f.attrs.get("spectrum_count", -1)),
            "zoom_levels": levels,
            "levels": {},
        }
    for z in levels:
        if not 0 <= z < N_ZOOM:
            continue
        if metadata is None:
            metadata = read_target_metadata(path, z, z)
        ds = open_hisscube(path, z, z, metadata=metadata)
        ib, sb = dask.compute(ds.image_bad_fraction.mean(), ds.spectrum_bad_fraction.mean())
        info["levels"][z] = {
            "image": list(ds.image.shape),
            "spectrum": list(ds.spectrum.shape),
            "image_nan_fraction": round(float(ib), 6),
            "spectrum_nan_fraction": round(float(sb), 6),
        }
        if z == levels[0]:
            info["band_colours"] = check_dataset(ds, str(path))
            info["layout"] = metadata.get("layout", "DATASET")
            info["stored_band_order"] = ds.attrs["stored_band_order"]
            info["spectra_per_target_max"] = int(ds.sizes["visit"])
    return info


def check_levels(path: str | Path, image_zooms: tuple[int, ...], spectrum_zooms: tuple[int, ...]) -> None:
    """Refuse a cube that lacks a requested level, naming it and the levels present: the file's
    groups and shapes only (no data read), so it runs before any cluster starts."""
    path = Path(path)
    with open_h5(path) as f:
        for zi in image_zooms or (None,):
            for zs in spectrum_zooms or (None,):
                check_layout(f, path, zi if zi is not None else zs, zs if zs is not None else zi)
