"""The zarr v3 hand-off store between stages.

Layout (one store, any subset of zoom levels)::

    STORE.zarr/                 per-object coordinates and labels (dims object, spectrum)
      image/{z}/                image, image_error, image_bad_fraction  (object, band, y, x)
      spectrum/{z}/             spectrum, spectrum_error, spectrum_bad_fraction (object, wavelength)

Every array is chunked along ``object`` only, with zarr chunks equal to the dask chunks that
write them (so no two tasks ever write one chunk), each about ``sfrdask.store.chunk-mb`` (>= 1 MB).
The store is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.errors import StoreError
from sfrdask.io.atomic import atomic_output, refuse_existing
from sfrdask.io.bands import check_dataset
from sfrdask.io.catalog import join_labels
from sfrdask.io.formats import format_of
from sfrdask.io.levels import check_zoom, image_size, spectrum_samples
from sfrdask.progress import compute_tasks

__all__ = ["open_group", "open_store", "store_levels", "write_group", "write_store"]

MARKER = "sfrdask_store"
IMAGE_VARS = ("image", "image_error", "image_bad_fraction")
SPECTRUM_VARS = ("spectrum", "spectrum_error", "spectrum_bad_fraction")


def _compressors(name: str | None = None) -> list[Any] | None:
    name = name or config.get("store.compressor")
    if name == "blosc-lz4":
        return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
    if name == "zstd":
        return [ZstdCodec(level=3)]
    if name in ("none", None):
        return None
    raise ValueError(f"unknown store compressor {name!r}: expected blosc-lz4, zstd or none")


def chunk_objects(bytes_per_object: int, n: int) -> int:
    """Objects per chunk so a chunk holds about ``store.chunk-mb`` (at least 1 MB; at most all objects)."""
    target = max(float(config.get("store.chunk-mb")), 1.0) * 2**20
    return int(min(max(n, 1), max(1, -(-target // max(bytes_per_object, 1)))))


def _compute(delayed: list[Any], client: Any, desc: str | None) -> None:
    """Run the writes on ``client`` (``None``: Dask's configured scheduler), with progress lines
    unless ``desc`` is None."""
    compute_tasks(delayed, client, desc or "", progress=desc is not None)


def _vlen_strings(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width unicode has no stable zarr v3 spec; variable-length strings do."""
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":
            ds = (
                ds.assign_coords({name: var.astype(object)})
                if name in ds.coords
                else ds.assign({name: var.astype(object)})
            )
    return ds


def _write_group(ds: xr.Dataset, store: Path, group: str | None, compressor: str | None) -> Any:
    ds = _vlen_strings(ds)
    comp = _compressors(compressor)
    encoding = {}
    for name, var in ds.data_vars.items():
        enc: dict[str, Any] = {}
        if var.chunks:
            enc["chunks"] = tuple(c[0] for c in var.chunks)
        if comp is not None and var.dtype.kind == "f":
            enc["compressors"] = comp
        encoding[name] = enc
    return ds.to_zarr(
        store,
        group=group,
        mode="a" if group else "w",
        zarr_format=3,
        consolidated=False,
        encoding=encoding,
        compute=False,
    )


def write_store(
    cube: str | Path,
    out: str | Path,
    catalog: pd.DataFrame | None = None,
    image_zooms: Sequence[int] = (0, 1, 2, 3),
    spectrum_zooms: Sequence[int] = (0, 1, 2, 3),
    compressor: str | None = None,
    overwrite: bool = False,
    client: Any = None,
) -> Path:
    """Ingest a HiSS-Cube file, or a cube of another input format (:mod:`sfrdask.io.formats`), and
    optionally its labels, into a zarr v3 store at ``out``.

    The chunks are read and written on ``client`` (a Dask Client; ``None``: Dask's configured
    in-process scheduler)."""
    out = Path(out)
    if not image_zooms and not spectrum_zooms:
        raise ValueError("choose at least one image or spectrum zoom level")
    for z in (*image_zooms, *spectrum_zooms):
        check_zoom(z)
    refuse_existing(out, overwrite)
    z_img0 = image_zooms[0] if image_zooms else 0
    z_spec0 = spectrum_zooms[0] if spectrum_zooms else 0
    reader = format_of(cube)  # HiSS-Cube, or another input format (sfrdask.io.formats)
    meta = reader.read_metadata(cube, z_img0, z_spec0)
    base = reader.open_dataset(cube, z_img0, z_spec0, metadata=meta)
    n = base.sizes["object"]
    band_check = check_dataset(base, str(cube)) if image_zooms else None  # warns if planes look permuted
    if catalog is not None:
        base = join_labels(base, catalog)
    root = base.drop_vars([*IMAGE_VARS, *SPECTRUM_VARS]).drop_dims(
        ["band", "y", "x", "wavelength"], errors="ignore"
    )
    root = root.compute()
    st = Path(cube).stat()
    root.attrs.update(
        {
            MARKER: __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "source": str(Path(cube).resolve()),
            "source_size": st.st_size,
            "source_mtime": st.st_mtime,
            "image_zooms": list(image_zooms),
            "spectrum_zooms": list(spectrum_zooms),
            "catalog": catalog.attrs.get("gal_info", "") if catalog is not None else "",
            "zoom_levels_present": list(base.attrs["zoom_levels_present"]),
            "band_check": {k: band_check[k] for k in ("colours", "best", "permuted")} if band_check else {},
        }
    )
    for k in ("format", "image_zoom", "spectrum_zoom"):
        root.attrs.pop(k, None)

    with atomic_output(out) as tmp:  # complete or absent
        # the metadata is in memory here: written from here, not shipped to workers inside a graph
        _write_group(root, tmp, None, compressor).compute(scheduler="synchronous")
        pending = []
        for z in image_zooms:
            s = image_size(z)
            k = chunk_objects(5 * s * s * 4, n)
            ds = reader.open_dataset(cube, z, z_spec0, chunks=k, metadata=meta)[list(IMAGE_VARS)]
            ds = ds.drop_vars([c for c in ds.coords if c not in ("object", "band")])
            pending.append(_write_group(ds, tmp, f"image/{z}", compressor))
        for z in spectrum_zooms:
            m = spectrum_samples(z)
            k = chunk_objects(m * 4, n)
            ds = reader.open_dataset(cube, z_img0, z, chunks=k, metadata=meta)[list(SPECTRUM_VARS)]
            ds = ds.drop_vars([c for c in ds.coords if c not in ("object", "wavelength")])
            pending.append(_write_group(ds, tmp, f"spectrum/{z}", compressor))
        _compute(pending, client, f"ingest {Path(cube).name}")
    return out


def store_levels(path: str | Path) -> dict[str, list[int]]:
    """The image and spectrum zoom levels a store holds."""
    g = _open_root(Path(path))
    levels = {}
    for kind in ("image", "spectrum"):
        levels[kind] = sorted(int(k) for k in g[kind].group_keys()) if kind in g else []
    return levels


def _open_root(path: Path) -> zarr.Group:
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    try:
        g = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as e:
        raise StoreError(f"{path}: not a zarr v3 store ({e})") from e
    if MARKER not in g.attrs:
        raise StoreError(
            f"{path}: not an sfrdask store (no '{MARKER}' attribute); was it written by sfrdask ingest?"
        )
    return g


def missing_level(store: str | Path, kind: str, zoom: int, present: list[int]) -> str:
    """The error for a zoom level a store lacks, with the commands that add it."""
    want = ",".join(str(z) for z in sorted({*present, zoom}))
    return (
        f"{store}: {kind} zoom level {zoom} not in the store (levels present: {list(present)}); add it by "
        f"ingesting again with it, `sfrdask ingest CUBE --catalog DIR --out {store} --{kind}-zooms {want} "
        f"--overwrite`, then `sfrdask preprocess {store}`"
    )


def open_store(path: str | Path, image_zoom: int | None = 0, spectrum_zoom: int | None = 0) -> xr.Dataset:
    """Open a store as one lazy Dataset shaped like ``open_hisscube``'s (labels included).

    Pass ``None`` for a modality to leave it out.
    """
    path = Path(path)
    levels = store_levels(path)
    parts = [xr.open_zarr(path, zarr_format=3, consolidated=False)]
    for kind, z in (("image", image_zoom), ("spectrum", spectrum_zoom)):
        if z is None:
            continue
        if z not in levels[kind]:
            raise StoreError(missing_level(path, kind, z, levels[kind]))
        parts.append(xr.open_zarr(path, group=f"{kind}/{z}", zarr_format=3, consolidated=False))
    ds = xr.merge(parts, combine_attrs="override", join="exact")
    for name, var in ds.variables.items():  # zarr gives numpy StringDType; hand back plain str arrays
        if var.dtype.kind in "TO":
            plain = np.asarray(var.values.tolist(), dtype=str)
            ds = (
                ds.assign_coords({name: (var.dims, plain, var.attrs)})
                if name in ds.coords
                else ds.assign({name: (var.dims, plain, var.attrs)})
            )
    ds.attrs.update(image_zoom=image_zoom, spectrum_zoom=spectrum_zoom)
    return ds


def write_group(store: str | Path, group: str, ds: xr.Dataset, compressor: str | None = None) -> None:
    """Add (or replace) group ``group`` of an existing store: written under a temporary name, computed
    with Dask's configured scheduler (the stage's runtime), then renamed, so a failed stage never
    leaves a group that looks complete."""
    store = Path(store)
    _open_root(store)
    with atomic_output(store / group, hidden=False) as tmp:  # a group is complete or absent
        _compute([_write_group(ds, store, str(tmp.relative_to(store)), compressor)], None, None)


def open_group(store: str | Path, group: str, needed_by: str = "") -> xr.Dataset:
    """Open a stage's group; a missing one names the stage that makes it."""
    store = Path(store)
    _open_root(store)
    if not (store / group / "zarr.json").exists():
        maker = {"selection": "sfrdask filter", "clean": "sfrdask deblend", "pca": "sfrdask pca"}
        hint = maker.get(group.split("/")[0], "the stage that writes it")
        who = f" (needed by {needed_by})" if needed_by else ""
        raise StoreError(f"{store}: no '{group}' group{who}; run `{hint}` on this store first")
    return xr.open_zarr(store, group=group, zarr_format=3, consolidated=False)
