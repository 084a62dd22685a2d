"""Open HiSS-Cube HDF5 files and check what they hold, with errors that name the file and the
dataset: the helpers every HiSS-Cube reader and writer shares (a leaf of :mod:`sfrdask.io`).

>>> parse_header(b'{"Z": 0.1, "CLASS": "GALAXY"}')
{'Z': 0.1, 'CLASS': 'GALAXY'}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py

from sfrdask.errors import HissCubeFormatError
from sfrdask.io.hisscube import layout as L

_KV = re.compile(rb'"([A-Za-z0-9_\-]+)"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+\-]*|true|false|null)')


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


def fail(path: Path, msg: str) -> HissCubeFormatError:
    return HissCubeFormatError(f"{path}: {msg}")


def open_h5(path: str | Path) -> h5py.File:
    """Open a file for reading, or say clearly why it is not a readable HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir() or not h5py.is_hdf5(path):
        raise fail(path, "not an HDF5 file (expected a HiSS-Cube .h5 file)")
    try:
        return h5py.File(path, "r")
    except OSError as e:  # truncated or corrupt
        raise fail(path, f"cannot be opened as HDF5 ({e})") from e


def require(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    if name not in f:
        raise fail(path, f"missing dataset /{name} (expected by the HiSS-Cube DATASET layout)")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise fail(path, f"/{name} is a group, expected a dataset")
    return obj


def require_refs(f: h5py.File, path: Path, name: str, ndim: int) -> h5py.Dataset:
    """A region-reference table: compound with ``ds_path`` and ``ds_slice_idx``, ``ndim`` axes."""
    ds = require(f, path, name)
    fields = ds.dtype.names or ()
    if "ds_path" not in fields or "ds_slice_idx" not in fields or ds.ndim != ndim:
        raise fail(
            path,
            f"/{name} has dtype {ds.dtype} and {ds.ndim} axes, expected a {ndim}-axis table of region "
            "references (fields ds_path, ds_slice_idx, ...)",
        )
    return ds


def zooms(f: h5py.File) -> list[int]:
    return sorted(int(k) for k in f[L.DENSE] if k.isdigit())


def check_layout(f: h5py.File, path: Path, image_zoom: int, spectrum_zoom: int) -> dict[str, tuple]:
    """Validate the groups and shapes the reader needs; return the shapes found."""
    if L.DENSE not in f:
        raise fail(path, f"no /{L.DENSE} group: not a HiSS-Cube file with a dense (machine-learning) cube")
    have = zooms(f)
    for kind, z in (("image", image_zoom), ("spectrum", spectrum_zoom)):
        if str(z) not in f[L.DENSE]:
            raise fail(path, f"{kind} zoom level {z} not found under /{L.DENSE} (levels present: {have})")
    img = require(f, path, L.image_dataset(image_zoom))
    img_err = require(f, path, f"{L.image_group(image_zoom)}/errors")
    spec = require(f, path, L.spectrum_dataset(spectrum_zoom))
    spec_err = require(f, path, f"{L.spectrum_group(spectrum_zoom)}/errors")
    for d in (img, img_err, spec, spec_err):
        if d.dtype.kind != "f":
            raise fail(path, f"/{d.name} has dtype {d.dtype}, expected floating point")
    if img.ndim != 4 or img.shape[1] != 5 or img.shape[2] != img.shape[3]:
        raise fail(path, f"/{img.name} has shape {img.shape}, expected (targets, 5, s, s)")
    if spec.ndim != 2:
        raise fail(path, f"/{spec.name} has shape {spec.shape}, expected (targets, samples)")
    for d, e in ((img, img_err), (spec, spec_err)):
        if d.shape != e.shape:
            raise fail(path, f"/{e.name} has shape {e.shape} but /{d.name} has {d.shape}; they must agree")
    if img.shape[0] != spec.shape[0]:
        raise fail(path, f"{img.shape[0]} image targets but {spec.shape[0]} spectrum targets")
    return {"image": img.shape, "spectrum": spec.shape}
