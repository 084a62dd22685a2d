"""Detect and isolate the central object of each cutout with sep.

Per object: a background and its noise per band (sep.Background on cutouts of 32 px or more; the
median and MAD of the border pixels below that, where a background mesh no longer fits), one
detection image (the bands' S/N maps summed and divided by sqrt(bands), so its noise is 1),
sep.extract with deblending, and the central object = the segment under the centre, or the
detection nearest to it within ``centre-radius``.
The same segmentation then acts on all bands.

Strategies (all keep the cutout shape):
- ``none``: no neighbour handling;
- ``crop``: everything outside the central half-size box is replaced by the background;
- ``mask``: pixels of other segments, grown by ``grow`` pixels, are replaced by the background;
- ``noise``: the same pixels get background plus Gaussian noise of the measured rms (so the
  noise texture stays; seeded by object id).
In every strategy NaN pixels are filled with the background (the bad-pixel policy). The mask has
bit 1 for replaced neighbour/cropped pixels and bit 2 for pixels that were NaN.

At 8 px (zoom 3) a target spans a few pixels and the default minimum area scales to 1 pixel: the
target is still found, but neighbours closer than ~2 pixels (~6 arcsec) merge with it and cannot
be separated; the scores in docs/benchmarks.md show what that costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import sep
import xarray as xr
import zarr
from scipy import ndimage

from sfrdask import config
from sfrdask.choices import DEBLEND_STRATEGIES
from sfrdask.errors import SfrdaskError
from sfrdask.io.store import open_group, open_store, write_group
from sfrdask.preprocessing.compact import compact_group
from sfrdask.preprocessing.quality import selected_objects, selection_digest

STRATEGIES = DEBLEND_STRATEGIES
NEIGHBOUR, WAS_NAN = 1, 2
N_DIAG = 5  # found, n_sources, dx, dy, flux share of the central segment


def params_from_config(**overrides: Any) -> dict[str, Any]:
    p = {k.replace("-", "_"): v for k, v in config.get("preprocess.deblend").items()}
    p.update({k: v for k, v in overrides.items() if v is not None})
    if p["strategy"] not in STRATEGIES:
        raise ValueError(f"unknown deblending strategy {p['strategy']!r}: expected one of {STRATEGIES}")
    return p


def _background(img: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = img.shape[-1]
    if s >= 32:
        b = sep.Background(img, mask=bad, bw=s // 4, bh=s // 4, fw=3, fh=3)
        return b.back(), np.maximum(b.rms(), 1e-30)
    w = max(1, s // 8)
    ring = np.ones_like(bad)
    ring[w:-w, w:-w] = False
    v = img[ring & ~bad]
    if v.size < 4:
        v = img[~bad]
    if v.size == 0:
        return np.zeros_like(img), np.ones_like(img)
    med = np.median(v)
    rms = 1.4826 * np.median(np.abs(v - med)) or np.std(v) or 1.0
    return np.full_like(img, med), np.full_like(img, rms)


def _central(seg: np.ndarray, objs: np.ndarray, c: float, radius: float) -> int:
    """The target's segment number: the commonest one at the cutout's centre pixel(s), else the
    nearest detection within ``radius`` pixels of the centre ``c``; 0 when none."""
    core = seg[int(np.floor(c)) : int(np.ceil(c)) + 1, int(np.floor(c)) : int(np.ceil(c)) + 1].ravel()
    core = core[core > 0]
    if core.size:
        return int(np.bincount(core).argmax())
    if len(objs):
        d = np.hypot(objs["x"] - c, objs["y"] - c)
        j = int(np.argmin(d))
        if d[j] <= radius:
            return j + 1
    return 0


def deblend_one(image: np.ndarray, zoom: int = 0, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Deblend one cutout ``(bands, s, s)``; sizes in zoom-0 pixels are scaled to ``zoom``.

    The parameters (``strategy``, ``thresh``, ``minarea``, ``deblend_nthresh``, ``deblend_cont``,
    ``grow``, ``centre_radius``) default to ``sfrdask.preprocess.deblend`` in dask.config."""
    p = params_from_config(**overrides)
    strategy, thresh, minarea = p["strategy"], p["thresh"], p["minarea"]
    deblend_nthresh, deblend_cont, grow, centre_radius = (
        p["deblend_nthresh"],
        p["deblend_cont"],
        p["grow"],
        p["centre_radius"],
    )
    nb, s, _ = image.shape
    bad = ~np.isfinite(image)
    img = np.where(bad, 0.0, image).astype(np.float64)
    back = np.empty_like(img)
    rms = np.empty_like(img)
    for b in range(nb):
        back[b], rms[b] = _background(np.ascontiguousarray(img[b]), np.ascontiguousarray(bad[b]))
    det = ((img - back) / rms).sum(axis=0) / np.sqrt(nb)
    anybad = bad.any(axis=0)
    det[anybad] = 0.0
    scale = 2.0**zoom
    area = max(1, round(minarea / scale**2))
    try:
        objs, seg = sep.extract(
            np.ascontiguousarray(det),
            thresh,
            err=np.ones_like(det),  # an error *array* turns on sep's matched filter: fainter detections
            mask=anybad,
            minarea=area,
            deblend_nthresh=deblend_nthresh,
            deblend_cont=deblend_cont,
            segmentation_map=True,
        )
    except Exception:  # sep gives up on pathological images (e.g. all pixels above threshold)
        objs, seg = np.zeros(0, dtype=[("x", float), ("y", float), ("flux", float)]), np.zeros((s, s), int)
    c = (s - 1) / 2.0
    central = _central(seg, objs, c, max(1.0, centre_radius / scale))
    found = central > 0
    dx = float(objs["x"][central - 1] - c) if found else np.nan
    dy = float(objs["y"][central - 1] - c) if found else np.nan
    share = float(objs["flux"][central - 1] / max(objs["flux"].sum(), 1e-30)) if found else np.nan

    replace = np.zeros((s, s), bool)
    if strategy == "crop":
        lo, hi = s // 4, s - s // 4
        replace[:, :] = True
        replace[lo:hi, lo:hi] = False
    elif strategy in ("mask", "noise") and found:
        others = (seg > 0) & (seg != central)
        g = round(grow / scale)
        if g > 0 and others.any():
            others = ndimage.binary_dilation(others, iterations=g) & (seg != central)
        replace = others
    fill = back
    if strategy == "noise":
        rng = np.random.default_rng(seed)
        fill = back + rng.normal(0.0, 1.0, back.shape) * rms
    out = np.where(replace[None] | bad, fill, img)
    out = np.where(bad & ~replace[None], back, out)
    mask = (replace * NEIGHBOUR) | (anybad * WAS_NAN)
    return {
        "image": out.astype(np.float32),
        "mask": mask.astype(np.uint8),
        "found": found,
        "n_sources": len(objs),
        "dx": dx,
        "dy": dy,
        "share": share,
    }


def deblend_cutouts(
    images: np.ndarray, object_ids: np.ndarray | None = None, seed: int = 0, **params: Any
) -> dict[str, np.ndarray]:
    """Deblend a batch ``(k, bands, s, s)``: cleaned images, masks and per-object diagnostics."""
    k = images.shape[0]
    ids = np.arange(k) if object_ids is None else np.asarray(object_ids)
    # sep allocates its object stack (default 300,000 pixels, several MB) on every extract call; under
    # the MALLOC_TRIM_THRESHOLD_ that Dask's nanny gives workers, that memory goes back to the OS and is
    # faulted in again each time (4.5x slower). A cutout never needs more than its own pixels.
    sep.set_extract_pixstack(2 * images.shape[-1] * images.shape[-2] + 1024)
    res = [deblend_one(images[i], seed=hash((seed, int(ids[i]))) & 0x7FFFFFFF, **params) for i in range(k)]
    return {
        "image": np.stack([r["image"] for r in res]) if k else np.zeros_like(images, np.float32),
        "mask": np.stack([r["mask"] for r in res]) if k else np.zeros((0, *images.shape[2:]), np.uint8),
        "found": np.array([r["found"] for r in res], bool),
        "n_sources": np.array([r["n_sources"] for r in res], np.int16),
        "dx": np.array([r["dx"] for r in res], np.float32),
        "dy": np.array([r["dy"] for r in res], np.float32),
        "share": np.array([r["share"] for r in res], np.float32),
    }


def _block(images: np.ndarray, keep: np.ndarray, ids: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """One dask block (a store chunk): cleaned bands, the mask, and diagnostics in the last plane.

    Only rows with ``keep`` are deblended; the others stay NaN (nothing to do, nothing to store:
    NaN compresses to almost nothing).
    """
    k, nb, s, _ = images.shape
    if s < N_DIAG:
        raise ValueError(f"cutouts of {s} px are too small to carry the diagnostics")
    out = np.zeros((k, nb + 2, s, s), np.float32)
    out[:, :nb] = np.nan
    out[:, nb + 1, 0, 2:N_DIAG] = np.nan
    rows = np.flatnonzero(keep[:, 0, 0, 0])
    if rows.size:
        r = deblend_cutouts(images[rows], ids[rows, 0, 0, 0], **params)
        out[rows, :nb] = r["image"]
        out[rows, nb] = r["mask"]
        diag = np.stack([r["found"], r["n_sources"], r["dx"], r["dy"], r["share"]], axis=1)
        out[rows, nb + 1, 0, :N_DIAG] = diag
    return out


def deblend_store(store: str | Path, zoom: int = 0, **overrides: Any) -> xr.Dataset:
    """Deblend the selected objects at one image zoom level; write group ``clean/{zoom}``.

    With a compact copy of the selection (``selected/image/{zoom}``, :mod:`.compact`) the stage reads
    only that and the group holds the selected objects (``object`` coordinate: their store
    indices). Without one, the work follows the store's own chunks (each task reads one chunk and
    deblends its selected rows) and the group keeps the store's object axis, with NaN images and
    ``central_found = False`` for objects outside the selection. Either way no rows are gathered
    across workers.
    """
    p = params_from_config(**overrides)
    idx = selected_objects(store)
    compact = compact_group(store, "image", zoom, idx)
    if compact:
        ds = open_group(store, compact)
    else:
        ds = open_store(store, image_zoom=zoom, spectrum_zoom=None)
    s = ds.sizes["x"]
    if s < 4:
        raise SfrdaskError(f"{store}: image zoom {zoom} cutouts are {s} px, too small for detection")
    images = ds.image.data
    n, nb = images.shape[:2]
    keep = np.zeros(n, bool)
    keep[np.arange(n) if compact else idx] = True
    per_row = (images.chunks[0], 1, 1, 1)
    keep_da = da.from_array(keep[:, None, None, None], chunks=per_row)
    ids = da.from_array(ds.object.values[:, None, None, None], chunks=per_row)
    params = dict(p, zoom=zoom)
    stacked = da.map_blocks(
        _block,
        images,
        keep_da,
        ids,
        params=params,
        dtype=np.float32,
        chunks=(images.chunks[0], (nb + 2,), (s,), (s,)),
    )
    diag = stacked[:, nb + 1, 0, :N_DIAG]
    out = xr.Dataset(
        {
            "image": (("object", "band", "y", "x"), stacked[:, :nb], ds.image.attrs),
            "mask": (
                ("object", "y", "x"),
                stacked[:, nb].astype(np.uint8),
                {"flag_masks": [NEIGHBOUR, WAS_NAN], "flag_meanings": "neighbour_or_cropped was_nan"},
            ),
            "central_found": ("object", diag[:, 0].astype(bool)),
            "n_sources": ("object", diag[:, 1].astype(np.int16)),
            "central_dx": ("object", diag[:, 2], {"units": "pixel"}),
            "central_dy": ("object", diag[:, 3], {"units": "pixel"}),
            "central_flux_share": ("object", diag[:, 4]),
        },
        coords={"object": ds.object.values, "band": ds.band.values},
        attrs={"zoom": zoom, "selection": selection_digest(idx), **p},
    )
    group = f"clean/{zoom}"
    write_group(store, group, out)
    found = int(open_group(store, group).central_found.sum())
    zarr.open_group(Path(store) / group, mode="r+").attrs.update(
        {"objects": int(idx.size), "central_found": found, "central_missing": int(idx.size - found)}
    )
    return open_group(store, group)
