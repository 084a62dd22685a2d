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

import json
import os
import re
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
from sfrdask.io import layout as L
from sfrdask.io.bands import check_dataset
from sfrdask.io.hisscube_tree import is_tree, read_tree_metadata
from sfrdask.io.levels import BANDS, N_ZOOM, check_zoom, stored_wavelengths, wavelength_grid

_BATCH = 4096  # targets per metadata read
_KV = re.compile(rb'"([A-Za-z0-9_\-]+)"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+\-]*|true|false|null)')
SPEC_KEYS = ("PLATEID", "MJD", "FIBERID", "PLUG_RA", "PLUG_DEC", "Z", "CLASS")


def parse_header(raw: bytes | str) -> dict[str, Any]:
    """Parse a stored FITS header (JSON). Real files may hold JSON cut at the field length:
    then the complete ``"KEY": value`` pairs before the cut are recovered."""
    if isinstance(raw, str):
        raw = raw.encode()
    raw = raw.rstrip(b"\x00")
    try:
        out = json.loads(raw)
        if isinstance(out, dict):
            return out
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    out = {}
    for key, val in _KV.findall(raw):
        try:
            out[key.decode()] = json.loads(val)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return out


def _fail(path: Path, msg: str) -> HissCubeFormatError:
    return HissCubeFormatError(f"{path}: {msg}")


def open_h5(path: str | Path) -> h5py.File:
    """Open a file for reading, or say clearly why it is not a readable HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir() or not h5py.is_hdf5(path):
        raise _fail(path, "not an HDF5 file (expected a HiSS-Cube .h5 file)")
    try:
        return h5py.File(path, "r")
    except OSError as e:  # truncated or corrupt
        raise _fail(path, f"cannot be opened as HDF5 ({e})") from e


def _require(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    if name not in f:
        raise _fail(path, f"missing dataset /{name} (expected by the HiSS-Cube DATASET layout)")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise _fail(path, f"/{name} is a group, expected a dataset")
    return obj


def _require_refs(f: h5py.File, path: Path, name: str, ndim: int) -> h5py.Dataset:
    """A region-reference table: compound with ``ds_path`` and ``ds_slice_idx``, ``ndim`` axes."""
    ds = _require(f, path, name)
    fields = ds.dtype.names or ()
    if "ds_path" not in fields or "ds_slice_idx" not in fields or ds.ndim != ndim:
        raise _fail(
            path,
            f"/{name} has dtype {ds.dtype} and {ds.ndim} axes, expected a {ndim}-axis table of region "
            "references (fields ds_path, ds_slice_idx, ...)",
        )
    return ds


def _zooms(f: h5py.File) -> list[int]:
    return sorted(int(k) for k in f[L.DENSE] if k.isdigit())


def check_layout(f: h5py.File, path: Path, image_zoom: int, spectrum_zoom: int) -> dict[str, tuple]:
    """Validate the groups and shapes the reader needs; return the shapes found."""
    if L.DENSE not in f:
        raise _fail(path, f"no /{L.DENSE} group: not a HiSS-Cube file with a dense (machine-learning) cube")
    have = _zooms(f)
    for kind, z in (("image", image_zoom), ("spectrum", spectrum_zoom)):
        if str(z) not in f[L.DENSE]:
            raise _fail(path, f"{kind} zoom level {z} not found under /{L.DENSE} (levels present: {have})")
    img = _require(f, path, L.image_dataset(image_zoom))
    img_err = _require(f, path, f"{L.image_group(image_zoom)}/errors")
    spec = _require(f, path, L.spectrum_dataset(spectrum_zoom))
    spec_err = _require(f, path, f"{L.spectrum_group(spectrum_zoom)}/errors")
    for d in (img, img_err, spec, spec_err):
        if d.dtype.kind != "f":
            raise _fail(path, f"/{d.name} has dtype {d.dtype}, expected floating point")
    if img.ndim != 4 or img.shape[1] != 5 or img.shape[2] != img.shape[3]:
        raise _fail(path, f"/{img.name} has shape {img.shape}, expected (targets, 5, s, s)")
    if spec.ndim != 2:
        raise _fail(path, f"/{spec.name} has shape {spec.shape}, expected (targets, samples)")
    for d, e in ((img, img_err), (spec, spec_err)):
        if d.shape != e.shape:
            raise _fail(path, f"/{e.name} has shape {e.shape} but /{d.name} has {d.shape}; they must agree")
    if img.shape[0] != spec.shape[0]:
        raise _fail(path, f"{img.shape[0]} image targets but {spec.shape[0]} spectrum targets")
    return {"image": img.shape, "spectrum": spec.shape}


_REF_FIELDS = ("ds_path", "ds_slice_idx")
_FIRST_SLOTS = 4  # spectra per target read at first; more only for rows that fill them all


def _used_refs(ds: h5py.Dataset, a: int, b: int) -> np.ndarray:
    """Rows ``a:b`` of a (targets, 200) reference table, trimmed to the slots any row uses. Only
    the first few slots are read, then the rest for rows that fill them (rarely any)."""
    fields = ds.fields(list(_REF_FIELDS))
    width = min(_FIRST_SLOTS, ds.shape[1])
    refs = fields[a:b, :width]
    full = np.flatnonzero(refs["ds_path"][:, -1] != b"") if width < ds.shape[1] else np.zeros(0, int)
    if full.size:
        more = np.stack([fields[a + i] for i in full])
        wide = np.zeros((b - a, ds.shape[1]), dtype=refs.dtype)
        wide[:, :width] = refs
        wide[full] = more
        refs = wide
    used = int((refs["ds_path"] != b"").sum(axis=1).max(initial=0))
    return refs[:, : max(used, 1)]


class _HeaderCache:
    """Headers read through region refs, parsed once per (dataset, row)."""

    def __init__(self, f: h5py.File, path: Path, keys: tuple[str, ...]):
        self.f, self.path, self.keys = f, path, keys
        self.cache: dict[tuple[bytes, int], dict[str, Any]] = {}

    def fetch(self, refs: np.ndarray) -> None:
        want: dict[bytes, set[int]] = {}
        for p, i in zip(refs["ds_path"].ravel(), refs["ds_slice_idx"].ravel(), strict=True):
            if p and (p, int(i)) not in self.cache:
                want.setdefault(p, set()).add(int(i))
        for p, idx in want.items():
            name = p.decode()
            if name not in self.f:
                raise _fail(self.path, f"a metadata reference points at {name}, which does not exist")
            ds = self.f[name]
            rows = np.array(sorted(idx))
            if rows.max() >= ds.shape[0]:
                raise _fail(
                    self.path,
                    f"a metadata reference points at row {rows.max()} of {name} ({ds.shape[0]} rows)",
                )
            raw = ds.fields("header")[rows] if ds.dtype.names else ds[rows]
            for i, r in zip(rows, raw, strict=True):
                h = parse_header(bytes(r))
                self.cache[(p, int(i))] = {k: h[k] for k in self.keys if k in h}

    def get(self, p: bytes, i: int) -> dict[str, Any]:
        return self.cache.get((p, int(i)), {})


def read_target_metadata(
    path: str | Path, image_zoom: int = 0, spectrum_zoom: int = 0, band_order: str | None = None
) -> dict[str, np.ndarray]:
    """Per-target keys from the spectra headers and the band of each stored image plane.

    Returns arrays: ``plane_of_band (n, 5)`` (stored plane holding u, g, r, i, z; -1: none), ``spec_*``
    keys ``(n, n_spec)`` (-1 where absent), ``RA``, ``DEC``, ``Z`` (NaN where absent), ``CLASS``, and
    ``layout`` ("DATASET" or "TREE", found by :func:`layout_of`).
    """
    path = Path(path)
    # HiSS-Cube's reference tables are chunks of 88 kB per target and level of which only slot 0 (and
    # the few slots a target uses) are kept: HDF5 still reads whole chunks, in file order (reading
    # just the slots without a chunk cache was slower cold: many tiny reads; docs/benchmarks.md)
    with open_h5(path) as f:
        check_layout(f, path, image_zoom, spectrum_zoom)
        if layout_of(f, path, spectrum_zoom) == "TREE":
            n = f[L.spectrum_dataset(spectrum_zoom)].shape[0]
            out = read_tree_metadata(f, path, n, image_zoom, spectrum_zoom)
            out["layout"] = "TREE"
            if band_order:
                out["plane_of_band"] = _fixed_order(band_order, n)
            return out
        spec_refs_ds = _require_refs(f, path, f"{L.spectrum_group(spectrum_zoom)}/spec_metadata_refs", 2)
        img_refs_ds = (
            None
            if band_order
            else _require_refs(f, path, f"{L.image_group(image_zoom)}/image_metadata_refs", 3)
        )
        n = f[L.spectrum_dataset(spectrum_zoom)].shape[0]
        specs = _HeaderCache(f, path, SPEC_KEYS)
        frames = _HeaderCache(f, path, ("FILTER",))
        spec_rows: list[np.ndarray] = []
        planes: list[np.ndarray] = []
        for a in range(0, n, _BATCH):
            b = min(n, a + _BATCH)
            refs = _used_refs(spec_refs_ds, a, b)
            specs.fetch(refs)
            spec_rows.append(refs)
            if img_refs_ds is not None:
                first = img_refs_ds.fields(list(_REF_FIELDS))[a:b, :, 0]
                frames.fetch(first)
                planes.append(first)

        width = max(r.shape[1] for r in spec_rows) if spec_rows else 1
        out: dict[str, np.ndarray] = {}
        keys = {k: np.full((n, width), -1, dtype=np.int64) for k in ("PLATEID", "MJD", "FIBERID")}
        ra = np.full(n, np.nan)
        dec = np.full(n, np.nan)
        z = np.full(n, np.nan)
        cls = np.full(n, "", dtype=object)
        t = 0
        for refs in spec_rows:
            for row in refs:
                first = True
                for j, r in enumerate(row):
                    if not r["ds_path"]:
                        continue
                    h = specs.get(r["ds_path"], r["ds_slice_idx"])
                    for k in keys:
                        if k in h:
                            keys[k][t, j] = int(h[k])
                    if first:
                        ra[t] = float(h.get("PLUG_RA", np.nan))
                        dec[t] = float(h.get("PLUG_DEC", np.nan))
                        z[t] = float(h.get("Z", np.nan))
                        cls[t] = str(h.get("CLASS", "")).strip()
                        first = False
                t += 1
        out.update({f"spec_{k.lower()}": v for k, v in keys.items()})
        out.update(RA=ra, DEC=dec, Z=z, CLASS=cls.astype(str), layout="DATASET")

        if band_order:
            out["plane_of_band"] = _fixed_order(band_order, n)
            return out
        plane_of_band = np.full((n, 5), -1, dtype=np.int64)
        t = 0
        for first in planes:
            for row in first:
                filters = [
                    str(frames.get(r["ds_path"], r["ds_slice_idx"]).get("FILTER", "")).strip().lower()
                    for r in row
                ]
                for bi, band in enumerate(BANDS):
                    if filters.count(band) == 1:
                        plane_of_band[t, bi] = filters.index(band)
                t += 1
        bad = np.flatnonzero((plane_of_band < 0).any(axis=1))
        if bad.size:
            raise _fail(
                path,
                f"DATASET layout: {bad.size} target(s) (first: {bad[0]}) lack one FILTER per band in the "
                "frame headers behind image_metadata_refs; pass band_order='ugriz' (or the stored "
                "order) to open_hisscube if the planes are known",
            )
        out["plane_of_band"] = plane_of_band
        return out


def _fixed_order(band_order: str, n: int) -> np.ndarray:
    order = band_order.lower()
    if sorted(order) != sorted(BANDS):
        raise ValueError(f"band_order must be a permutation of 'ugriz', got {band_order!r}")
    return np.tile([order.index(b) for b in BANDS], (n, 1))


def layout_of(f: h5py.File, path: Path, spectrum_zoom: int = 0) -> str:
    """``"DATASET"`` when the dense cube's spectrum references lead somewhere, ``"TREE"`` when they
    are empty and ``/semi_sparse_cube`` is a HEALPix tree; otherwise a clear error."""
    name = f"{L.spectrum_group(spectrum_zoom)}/spec_metadata_refs"
    refs = f.get(name)
    filled = False
    if isinstance(refs, h5py.Dataset) and refs.dtype.names and "ds_path" in refs.dtype.names:
        head = refs[: min(refs.shape[0], 64)]
        filled = bool((head["ds_path"] != b"").any()) or refs.shape[0] == 0
    if filled:
        return "DATASET"
    if is_tree(f):
        return "TREE"
    if refs is None:
        _require_refs(f, path, name, 2)  # the DATASET layout's own message
    raise _fail(
        path,
        f"neither HiSS-Cube layout: /{name} holds no references (DATASET layout) and /{L.SPARSE} "
        "holds no HEALPix 'spatial' groups (TREE layout), so targets cannot be tied to their headers",
    )


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
        available = _zooms(f)
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
    image_vars = {"image": img_pair[:, 0], "image_error": img_pair[:, 1]}
    spec_vars = {"spectrum": spec_pair[:, 0], "spectrum_error": spec_pair[:, 1]}
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
            "image": (dims_i, image_vars["image"], {"units": unit, "long_name": "image cutout flux density"}),
            "image_error": (dims_i, image_vars["image_error"], {"units": unit}),
            "spectrum": (
                dims_s,
                spec_vars["spectrum"],
                {"units": unit, "long_name": "spectral flux density"},
            ),
            "spectrum_error": (dims_s, spec_vars["spectrum_error"], {"units": unit}),
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
        coords={
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
        },
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
            raise _fail(path, f"no /{L.DENSE} group: not a HiSS-Cube file with a dense cube")
        levels = _zooms(f)
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
