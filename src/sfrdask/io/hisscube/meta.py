"""Per-target metadata of a HiSS-Cube file: the keys of each target's spectrum headers and the
band of each stored image plane, through the DATASET layout's region references or the TREE
layout's HEALPix cells (:mod:`sfrdask.io.hisscube.tree`), whichever the file has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.h5 import check_layout, fail, open_h5, parse_header, require_refs
from sfrdask.io.hisscube.tree import is_tree, read_tree_metadata
from sfrdask.io.levels import BANDS

_BATCH = 4096  # targets per metadata read
SPEC_KEYS = ("PLATEID", "MJD", "FIBERID", "PLUG_RA", "PLUG_DEC", "Z", "CLASS")

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
                raise fail(self.path, f"a metadata reference points at {name}, which does not exist")
            ds = self.f[name]
            rows = np.array(sorted(idx))
            if rows.max() >= ds.shape[0]:
                raise fail(
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
        spec_refs_ds = require_refs(f, path, f"{L.spectrum_group(spectrum_zoom)}/spec_metadata_refs", 2)
        img_refs_ds = (
            None
            if band_order
            else require_refs(f, path, f"{L.image_group(image_zoom)}/image_metadata_refs", 3)
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

        out = _spectrum_keys(spec_rows, specs, n)

        if band_order:
            out["plane_of_band"] = _fixed_order(band_order, n)
            return out
        out["plane_of_band"] = _planes_of_bands(planes, frames, n, path)
        return out


def _spectrum_keys(spec_rows: list[np.ndarray], specs: _HeaderCache, n: int) -> dict[str, Any]:
    """Per target, from its spectra's headers: PLATEID/MJD/FIBERID of every visit (-1 where
    absent) and the first spectrum's PLUG_RA/PLUG_DEC, Z and CLASS."""
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
    return out


def _planes_of_bands(planes: list[np.ndarray], frames: _HeaderCache, n: int, path: Path) -> np.ndarray:
    """Per target, the stored image plane of each band, from the FILTER of the frames behind it;
    a target without one FILTER per band is refused, naming the way out (``band_order``)."""
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
        raise fail(
            path,
            f"DATASET layout: {bad.size} target(s) (first: {bad[0]}) lack one FILTER per band in the "
            "frame headers behind image_metadata_refs; pass band_order='ugriz' (or the stored "
            "order) to open_hisscube if the planes are known",
        )
    return plane_of_band


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
        require_refs(f, path, name, 2)  # the DATASET layout's own message
    raise fail(
        path,
        f"neither HiSS-Cube layout: /{name} holds no references (DATASET layout) and /{L.SPARSE} "
        "holds no HEALPix 'spatial' groups (TREE layout), so targets cannot be tied to their headers",
    )
