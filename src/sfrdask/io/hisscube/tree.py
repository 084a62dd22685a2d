"""HiSS-Cube's TREE layout (the 2021 paper's): find its targets and read their metadata.

In this layout the dense cube's reference tables are empty. What ties a dense row to its spectra
and frames is the semi-sparse tree (see docs/formats.md)::

    /semi_sparse_cube/<order-0 cell>/<order-1 cell>/.../<order-15 cell>      attrs type="spatial"
        <time>/<samples>/spec-PLATE-MJD-FIBER.fits   (samples, 3)  attrs serialized_header (JSON)
        image_cutouts_<zoom>   (200,) HDF5 region references to frame datasets (FILTER in their header)

HiSS-Cube writes one dense row per order-15 cell that holds spectra, walking the tree depth first
in the file's (creation) order, and skips cells without cutouts. Its image planes follow the order
of the cell's ``image_cutouts_<zoom>`` references, which it sorts by the frames' observation time
(TAI): the real field 2820-3-122 gives r, i, u, z, g. So plane k holds the band of the frame behind
the k-th reference (the FILTER in that frame's serialized_header); no fixed order is assumed. A
band with no referenced frame reads as NaN (HiSS-Cube leaves zeros there). A cell whose planes
cannot be proven (a frame without FILTER, two frames of one band) refuses the file, naming the
target and the level.

:func:`sfrdask.io.hisscube.write.write_tree` turns a DATASET-layout file into this layout (tests,
and files for tools that expect it). Its frames are strips of the cutouts they serve, not whole
frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sfrdask.errors import HissCubeFormatError
from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.h5 import parse_header
from sfrdask.io.levels import BANDS, spectrum_samples

FRAME_ORDER = 10  # HEALPix order of the cells that hold frames in files HiSS-Cube writes
MIDPOINTS = {"u": 3551, "g": 4686, "r": 6166, "i": 7480, "z": 8932}


def _kind(obj: Any) -> str:
    v = obj.attrs.get("type", "")
    return v.decode() if isinstance(v, bytes) else str(v)


def is_tree(f: h5py.File) -> bool:
    """True if ``/semi_sparse_cube`` holds HEALPix ``spatial`` groups (the TREE layout)."""
    sparse = f.get(L.SPARSE)
    if not isinstance(sparse, h5py.Group):
        return False
    return any(isinstance(g, h5py.Group) and _kind(g) == "spatial" for g in sparse.values())


def _spectrum_times(node: h5py.Group) -> list[h5py.Group]:
    """The ``time`` groups of ``node`` that hold spectra (resolution groups directly below)."""
    out = []
    for child in node.values():
        if isinstance(child, h5py.Group) and _kind(child) == "time":
            first = next(iter(child.values()), None)
            if isinstance(first, h5py.Group) and _kind(first) == "resolution":
                out.append(child)
    return out


def spectrum_cells(f: h5py.File) -> list[tuple[h5py.Group, list[h5py.Group]]]:
    """Every spatial group holding spectra, with its time groups, in HiSS-Cube's walk order."""
    out: list[tuple[h5py.Group, list[h5py.Group]]] = []
    stack = [f[L.SPARSE]]
    while stack:
        g = stack.pop()
        times = _spectrum_times(g)
        if times:
            out.append((g, times))
            continue
        kids = [c for c in g.values() if isinstance(c, h5py.Group) and _kind(c) == "spatial"]
        stack.extend(reversed(kids))
    return out


def _first_cell_depth(g: h5py.Group, depth: int = 0) -> int | None:
    """Depth below ``g`` of the first spatial group that holds spectra (typed walk, stops there)."""
    if _spectrum_times(g):
        return depth
    for c in g.values():
        if isinstance(c, h5py.Group) and _kind(c) == "spatial":
            found = _first_cell_depth(c, depth + 1)
            if found is not None:
                return found
    return None


def cell_index(f: h5py.File, spectrum_zoom: int, refs_name: str) -> list[tuple[str, list[str], bool]] | None:
    """Every spectrum cell as (path, [its spectrum dataset at ``spectrum_zoom`` per time group],
    whether it holds ``refs_name``), in the order of :func:`spectrum_cells`, from one C-level walk of
    the link names (no object opened per level: 10x faster on large files than the typed walk).
    Cells sit at one depth, as HiSS-Cube writes them (its own walk stops at a fixed HEALPix order);
    ``None`` when the file does not allow this walk (no creation-order index where one is tracked),
    and the caller walks group by group instead."""
    sparse = f[L.SPARSE]
    depth = _first_cell_depth(sparse)
    if depth is None:
        return []
    names: list[bytes] = []
    tracked = sparse.id.get_create_plist().get_link_creation_order()
    order = h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME  # as h5py iterates a group
    try:
        sparse.id.links.visit(names.append, idx_type=order)  # links only: no object header read
    except (KeyError, RuntimeError, ValueError):
        return None
    want = str(spectrum_samples(spectrum_zoom)).encode()
    cells: dict[bytes, dict[bytes, bytes | None]] = {}  # cell -> time -> chosen dataset
    has_refs: set[bytes] = set()
    ref_name = refs_name.encode()
    for n in names:
        parts = n.split(b"/")
        if len(parts) == depth + 3:
            cell = b"/".join(parts[:depth])
            times = cells.setdefault(cell, {})
            if parts[depth + 1] == want:
                times[parts[depth]] = n
            else:
                times.setdefault(parts[depth], None)
        elif len(parts) == depth + 1 and parts[depth] == ref_name:
            has_refs.add(b"/".join(parts[:depth]))
    root = sparse.name
    out = []
    for cell, times in cells.items():
        path = f"{root}/{cell.decode()}"
        if cell not in has_refs and _kind(f[path]) != "spatial":
            continue  # a frame's time group at the same depth, not a cell
        specs = []
        for t, ds in times.items():
            if ds is None:  # resolution groups not named by their samples: find it by res_zoom
                d = _spectrum_dataset(f[f"{path}/{t.decode()}"], spectrum_zoom)
                if d is not None:
                    specs.append(d.name)
            else:
                specs.append(f"{root}/{ds.decode()}")
        out.append((path, specs, cell in has_refs))
    return out


def _header(ds: h5py.Dataset) -> dict[str, Any]:
    raw = ds.attrs.get("serialized_header", b"")
    return parse_header(raw if isinstance(raw, bytes | str) else bytes(raw))


def _spectrum_dataset(time: h5py.Group, zoom: int) -> h5py.Dataset | None:
    """The spectrum stored at ``zoom`` in one time group (by ``res_zoom``, else by position)."""
    groups = [g for g in time.values() if isinstance(g, h5py.Group)]
    chosen = [g for g in groups if int(g.attrs.get("res_zoom", -1)) == zoom]
    grp = chosen[0] if chosen else (groups[zoom] if zoom < len(groups) else None)
    if grp is None:
        return None
    return next((d for d in grp.values() if isinstance(d, h5py.Dataset)), None)


def _target_name(cell: str, headers: list[dict[str, Any]]) -> str:
    """How an error names a target: its first spectrum's PLATE-MJD-FIBER and its HEALPix cell."""
    if headers and all(k in headers[0] for k in ("PLATEID", "MJD", "FIBERID")):
        h = headers[0]
        return f"target {int(h['PLATEID'])}-{int(h['MJD'])}-{int(h['FIBERID'])} (cell {cell})"
    return f"target in cell {cell}"


class _Frames:
    """FILTER of each frame dataset a region reference leads to, read once per frame."""

    def __init__(self, f: h5py.File):
        self.f = f
        self.filters: dict[int, str] = {}

    def filter_of(self, ref: h5py.RegionReference) -> str:
        oid = h5py.h5r.dereference(ref, self.f.id)  # low level: no high-level object per reference
        key = hash(oid)  # (file, object address); a name would search the whole file
        if key not in self.filters:
            self.filters[key] = str(_header(self.f[ref]).get("FILTER", "")).strip().lower()
        return self.filters[key]


def planes_of_cell(frames: _Frames, cell: str, refs: np.ndarray, where: str, zoom: int) -> np.ndarray | None:
    """Plane of u, g, r, i, z (-1: none) in one cell's dense row: plane k holds the band of the
    frame behind its k-th ``image_cutouts_<zoom>`` reference. ``None`` for a cell without cutouts.

    Refuses (HissCubeFormatError) a cell whose planes cannot be proven: a frame without a u/g/r/i/z
    FILTER, or two frames of one band, whose planes HiSS-Cube would have stacked into one."""
    out = np.full(5, -1, dtype=np.int64)
    for k, ref in enumerate(refs):
        if not ref:
            break  # HiSS-Cube fills the slots from the start and stops at the first null
        band = frames.filter_of(ref)
        if band not in BANDS:
            raise HissCubeFormatError(
                f"{where}: TREE layout, image zoom {zoom}: reference {k} of {cell}/image_cutouts_{zoom} "
                f"leads to frame {frames.f[ref].name} whose serialized_header has FILTER {band!r}, expected "
                "one of u, g, r, i, z: the band of that image plane cannot be proven"
            )
        b = BANDS.index(band)
        if out[b] >= 0 or k >= 5:
            raise HissCubeFormatError(
                f"{where}: TREE layout, image zoom {zoom}: {cell}/image_cutouts_{zoom} references "
                f"more than one frame of band {band} (references {int(out[b])} and {k}); the dense cube has "
                "one plane per band, so which frame each plane holds cannot be proven"
            )
        out[b] = k
    return out if (out >= 0).any() else None


def read_tree_metadata(
    f: h5py.File, path: Path, n: int, image_zoom: int, spectrum_zoom: int
) -> dict[str, Any]:
    """The per-target metadata of a TREE-layout file, in the dense cube's row order.

    Same keys as :func:`sfrdask.io.hisscube.meta.read_target_metadata`. Rows that HiSS-Cube allocated
    but left empty (cells without cutouts) get no keys and NaN images."""
    refs_name = f"image_cutouts_{image_zoom}"
    index = cell_index(f, spectrum_zoom, refs_name)
    if index is None:  # the slow walk, group by group
        index = [
            (node.name, [d.name for t in times if (d := _spectrum_dataset(t, spectrum_zoom)) is not None],
             refs_name in node)
            for node, times in spectrum_cells(f)
        ]  # fmt: skip
    if not index:
        raise HissCubeFormatError(
            f"{path}: TREE layout, but no spatial group under /{L.SPARSE} holds spectra "
            "(expected <cell>/<time>/<samples>/spec-*.fits)"
        )
    frames = _Frames(f)
    rows: list[tuple[list[dict[str, Any]], np.ndarray]] = []
    for cell, specs, has_refs in index:
        headers = [_header(f[s]) for s in specs]
        if not has_refs:
            raise HissCubeFormatError(
                f"{path}: TREE layout: {cell} holds spectra but no {refs_name} dataset "
                "(region references to the frames of its cutouts)"
            )
        where = f"{path}: {_target_name(cell, headers)}"
        planes = planes_of_cell(frames, cell, f[f"{cell}/{refs_name}"][...], where, image_zoom)
        if planes is None:
            continue  # HiSS-Cube writes no row for a cell without cutouts
        rows.append((headers, planes))
    if len(rows) > n:
        raise HissCubeFormatError(
            f"{path}: TREE layout: {len(rows)} spectrum cells with cutouts under /{L.SPARSE} but the dense "
            f"cube has {n} rows"
        )
    width = max((len(h) for h, _ in rows), default=1) or 1
    keys = {k: np.full((n, width), -1, dtype=np.int64) for k in ("PLATEID", "MJD", "FIBERID")}
    first = {k: np.full(n, np.nan) for k in ("PLUG_RA", "PLUG_DEC", "Z")}
    cls = np.full(n, "", dtype=object)
    plane_of_band = np.full((n, 5), -1, dtype=np.int64)
    for t, (headers, planes) in enumerate(rows):
        for j, h in enumerate(headers):
            for k in keys:
                if k in h:
                    keys[k][t, j] = int(h[k])
        if headers:
            for k in first:
                first[k][t] = float(headers[0].get(k, np.nan))
            cls[t] = str(headers[0].get("CLASS", "")).strip()
        plane_of_band[t] = planes
    out: dict[str, Any] = {f"spec_{k.lower()}": v for k, v in keys.items()}
    out.update(RA=first["PLUG_RA"], DEC=first["PLUG_DEC"], Z=first["Z"], CLASS=cls.astype(str))
    out["plane_of_band"] = plane_of_band
    return out


# -- writing ---------------------------------------------------------------------------------


# -- the tree's nodes, named as HiSS-Cube names them (the writer uses these) ---------------------
def cell_path(ipix: int, order: int) -> list[str]:
    """Group names from order 0 down to ``order`` of a nested HEALPix pixel of that order."""
    return [str(ipix >> (2 * (order - k))) for k in range(order + 1)]


def spatial_group(root: h5py.Group, names: list[str]) -> h5py.Group:
    """The nested spatial groups ``names`` under ``root``, created where missing."""
    g = root
    for name in names:
        if name not in g:
            g.create_group(name, track_order=True).attrs["type"] = "spatial"
        g = g[name]
    return g


def typed_group(parent: h5py.Group, name: str, kind: str, **attrs: Any) -> h5py.Group:
    """Group ``name`` of ``parent``, of HiSS-Cube's node kind ``kind``, created where missing."""
    if name not in parent:
        g = parent.create_group(name, track_order=True)
        g.attrs["type"] = kind
        g.attrs.update(attrs)
    return parent[name]


def time_name(h: dict[str, Any], fallback: str) -> str:
    """A time group's name: the observation's TAI, else its MJD."""
    for key in ("TAI", "MJD"):
        if key in h:
            return str(h[key])
    return fallback
