"""The selected objects' data, stored contiguously: what deblending, PCA and training read.

The ingested groups ``image/{z}`` and ``spectrum/{z}`` hold every object of the cube. A selection
is a small share of them (about 7% of the user's cube has FLAG == 0) spread over every chunk, so a
stage that reads only selected objects would still read (and decompress) nearly every chunk.
:func:`write_compact` copies the selected objects once, after filtering, into

    selected/image/{z}      image (n_selected, band, y, x)
    selected/spectrum/{z}   spectrum, spectrum_error (n_selected, wavelength)

with the ``object`` coordinate holding their indices in the store and the selection's digest in
the attributes; :func:`compact_group` finds a group that matches the current selection. Prediction
over the whole cube keeps reading the full groups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from sfrdask.io.store import chunk_objects, open_store, store_levels, write_group
from sfrdask.preprocessing.quality import selected_objects, selection_digest

VARIABLES = {"image": ("image",), "spectrum": ("spectrum", "spectrum_error")}


def compact_name(modality: str, zoom: int) -> str:
    return f"selected/{modality}/{zoom}"


def write_compact(store: str | Path, modalities: tuple[str, ...] = ("image", "spectrum")) -> list[str]:
    """Copy the selected objects of every stored level into ``selected/...``; return the groups.

    Runs on Dask's configured scheduler (the stage's runtime): each output chunk gathers its
    objects from the few input chunks that hold them."""
    store = Path(store)
    idx = selected_objects(store)
    digest = selection_digest(idx)
    levels = store_levels(store)
    written = []
    for modality in modalities:
        for z in levels[modality]:
            levels_kw = {"image_zoom": None, "spectrum_zoom": None, f"{modality}_zoom": z}
            names = list(VARIABLES[modality])
            ds = open_store(store, **levels_kw)[names].isel(object=idx)
            per_object = sum(int(np.prod(ds[v].shape[1:])) * ds[v].dtype.itemsize for v in names)
            k = chunk_objects(per_object, idx.size)
            ds = ds.chunk({"object": k})  # uniform chunks: one zarr chunk each, nothing shared
            keep = [c for c in ds.coords if c in ("object", "band", "wavelength")]
            ds = ds.drop_vars([c for c in ds.coords if c not in keep])
            ds.attrs = {"selection": digest, "objects": int(idx.size), "source": f"{modality}/{z}"}
            group = compact_name(modality, z)
            write_group(store, group, ds)
            written.append(group)
    return written


def compact_group(store: str | Path, modality: str, zoom: int, idx: np.ndarray | None = None) -> str | None:
    """``selected/{modality}/{zoom}`` if it was written for the current selection, else None."""
    store = Path(store)
    group = compact_name(modality, zoom)
    if not (store / group / "zarr.json").exists():
        return None
    idx = selected_objects(store) if idx is None else idx
    attrs = zarr.open_group(store / group, mode="r", zarr_format=3).attrs
    return group if attrs.get("selection") == selection_digest(idx) else None
