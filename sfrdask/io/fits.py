"""Build a HiSS-Cube file (DATASET layout) from SDSS frame and spectrum FITS files, on Dask.

For example (``sfrdask build-cube --frames frames/ --spectra spectra/ --out cube.h5``)::

    from sfrdask.io.fits import build_cube

    report = build_cube("frames/", "spectra/", "cube.h5")
    report["targets"]["written"]

What it does, following ``docs/formats.md``:

1. *Scan* every frame (``frame-*.fits[.bz2]``: band, WCS, data readable) and every spectrum
   (``spec-PLATE-MJD-FIBER.fits`` or any other ``*.fits`` name: identified by their headers; SDSS-I/II
   and BOSS: PLUG_RA/PLUG_DEC, redshift, class) in
   parallel. Unreadable or truncated files, frames without a WCS and unknown bands are counted and
   named in the report, not fatal.
2. *Group* spectra whose plug positions lie within ``match_arcsec`` into targets (repeat
   observations of one object), and find for each target the frames holding a whole 64 x 64
   cutout around it. A target is kept only when all five bands have one; the others are counted
   (outside every frame, or missing bands).
3. *Extract* in batches of targets: one task per frame reads it once and cuts out every target of
   the batch it covers; one task per spectrum rebins it. Frame flux (nanomaggies) gets its errors
   from the calibration vector, the sky and the CCD gain / dark variance, then the HiSS-Cube unit;
   spectra are rebinned flux-conserving onto the 4620-sample grid. Epochs of a band and spectra of
   a target are combined by inverse-variance weighting; the lower zoom levels follow.
4. *Write* with the same writer as the synthetic survey, to a temporary file renamed when complete,
   plus ``CUBE.build.json`` (the report).
Memory is bounded by the batch: frames are read inside tasks and only cutouts come back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text
from sfrdask.io.hisscube_write import HissCubeWriter
from sfrdask.io.layout import observation_time
from sfrdask.io.levels import (
    BANDS,
    CUTOUT_SIZE,
    N_ZOOM,
    all_spectrum_levels,
    combine_ivw,
    cutout_start,
    frame_levels,
    image_size,
    nmgy_to_stored,
    wavelength_grid,
)
from sfrdask.progress import map_ordered

FRAME_RE = re.compile(r"^frame-([ugriz])-(\d{6})-(\d)-(\d{4})\.fits(\.bz2)?$")
SPEC_RE = re.compile(r"^spec-(\d{4,5})-(\d{5})-(\d{4})\.fits$")
SPECTRUM_UNIT = 1e-17  # erg s^-1 cm^-2 A^-1 per unit of an SDSS spectrum file
WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")

# SDSS CCD gain (e-/DN) and dark variance (DN^2) per camera column and band (SDSS frame data model).
# Entries given as (before, after, run) changed at that run.
_GAIN = {
    1: {"u": 1.62, "g": 3.32, "r": 4.71, "i": 5.165, "z": 4.745},
    2: {"u": (1.595, 1.825, 1100), "g": 3.855, "r": 4.6, "i": 6.565, "z": 5.155},
    3: {"u": 1.59, "g": 3.845, "r": 4.72, "i": 4.86, "z": 4.885},
    4: {"u": 1.6, "g": 3.995, "r": 4.76, "i": 4.885, "z": 4.775},
    5: {"u": 1.47, "g": 4.05, "r": 4.725, "i": 4.64, "z": 3.48},
    6: {"u": 2.17, "g": 4.035, "r": 4.895, "i": 4.76, "z": 4.69},
}
_DARK_VARIANCE = {
    1: {"u": 9.61, "g": 15.6025, "r": 1.8225, "i": 7.84, "z": 0.81},
    2: {"u": 12.6025, "g": 1.44, "r": 1.0, "i": (5.76, 6.25, 1500), "z": 1.0},
    3: {"u": 8.7025, "g": 1.3225, "r": 1.3225, "i": 4.6225, "z": 1.0},
    4: {"u": 12.6025, "g": 1.96, "r": 1.3225, "i": (6.25, 7.5625, 1500), "z": (9.61, 12.6025, 1500)},
    5: {"u": 9.3025, "g": 1.1025, "r": 0.81, "i": 7.84, "z": (1.8225, 2.1025, 1500)},
    6: {"u": 7.0225, "g": 1.8225, "r": 0.9025, "i": 5.0625, "z": 1.21},
}


class FitsError(SfrdaskError, ValueError):
    """A FITS frame or spectrum cannot be used: unreadable, truncated, no WCS, unknown band."""


def ccd_constant(table: dict, camcol: int, band: str, run: int) -> float:
    """Gain or dark variance of one SDSS CCD (``table`` is ``_GAIN`` or ``_DARK_VARIANCE``)."""
    v = table[camcol][band]
    if isinstance(v, tuple):
        before, after, from_run = v
        return after if run > from_run else before
    return v


def header_dict(header: Any) -> dict[str, Any]:
    """A FITS header as the JSON-able dict HiSS-Cube stores (COMMENT/HISTORY/blank cards dropped)."""
    out = {}
    for k, v in header.items():
        if k in ("COMMENT", "HISTORY", "") or k in out:
            continue
        if isinstance(v, bool | int | float | str):
            out[k] = v if not (isinstance(v, float) and not np.isfinite(v)) else str(v)
        else:
            out[k] = str(v)
    return out


def _open(path: Path) -> Any:
    from astropy.io import fits

    try:
        return fits.open(path, memmap=False)
    except Exception as e:  # astropy raises OSError, ValueError, EOFError, ... for broken files
        raise FitsError(f"{path}: not a readable FITS file ({type(e).__name__}: {e})") from e


# -- frames --------------------------------------------------------------------------------------
def read_frame(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Flux and 1-sigma error (both nanomaggies, float32) and the primary header of an SDSS frame.

    Error per pixel, as the SDSS data model prescribes: the flux is turned back into counts with
    the calibration vector (HDU 1) plus the sky (HDU 2, bilinearly interpolated onto the pixels),
    ``dn_err = sqrt(dn / gain + dark_variance)``, then calibrated back.
    """
    path = Path(path)
    with _open(path) as hdul:
        try:
            header = header_dict(hdul[0].header)
            img = np.asarray(hdul[0].data, dtype=np.float64)
            calib = np.asarray(hdul[1].data, dtype=np.float64)
            sky = hdul[2].data
            allsky = np.asarray(sky["ALLSKY"][0], dtype=np.float64)
            xi = np.asarray(sky["XINTERP"][0], dtype=np.float64)
            yi = np.asarray(sky["YINTERP"][0], dtype=np.float64)
        except Exception as e:
            raise FitsError(f"{path}: truncated or not an SDSS frame ({type(e).__name__}: {e})") from e
    band, camcol, run = _frame_identity(path, header)
    if (
        img.ndim != 2
        or calib.shape != (img.shape[1],)
        or yi.shape != (img.shape[0],)
        or xi.shape != (img.shape[1],)
    ):
        raise FitsError(
            f"{path}: frame of shape {img.shape} does not match its calibration vector {calib.shape} "
            f"or sky grid ({yi.shape}, {xi.shape})"
        )
    simg = ndimage.map_coordinates(allsky, np.meshgrid(yi, xi, indexing="ij"), order=1, mode="nearest")
    dn = img / calib[None, :] + simg
    dn_err = np.sqrt(np.maximum(dn, 0) / ccd_constant(_GAIN, camcol, band, run)
                     + ccd_constant(_DARK_VARIANCE, camcol, band, run))  # fmt: skip
    return img.astype(np.float32), (dn_err * calib[None, :]).astype(np.float32), header


def _frame_identity(path: Path, header: dict[str, Any]) -> tuple[str, int, int]:
    band = str(header.get("FILTER", "")).strip().lower()
    if band not in BANDS:
        raise FitsError(f"{path}: FILTER {header.get('FILTER')!r} is not one of u, g, r, i, z")
    m = FRAME_RE.match(path.name)
    camcol = int(header.get("CAMCOL", m.group(3) if m else 0))
    run = int(header.get("RUN", m.group(2) if m else 0))
    if camcol not in _GAIN:
        raise FitsError(f"{path}: CAMCOL {camcol} is not an SDSS camera column (1-6)")
    return band, camcol, run


def frame_wcs(header: dict[str, Any], path: str | Path = "frame") -> Any:
    """The celestial WCS of a frame header; FitsError when its WCS keys are missing."""
    from astropy.wcs import WCS

    missing = [k for k in WCS_KEYS if k not in header]
    if missing:
        raise FitsError(f"{path}: no WCS (missing {', '.join(missing)})")
    return WCS({k: header[k] for k in (*WCS_KEYS, "NAXIS1", "NAXIS2") if k in header}, naxis=2)


def scan_frame(path: str | Path) -> dict[str, Any]:
    """What the planner needs from a frame (band, header, shape), or why it cannot be used."""
    path = Path(path)
    try:
        img, _, header = read_frame(path)
        frame_wcs(header, path)
        band = str(header["FILTER"]).strip().lower()
    except FitsError as e:
        return {"path": str(path), "ok": False, "reason": str(e)}
    return {"path": str(path), "ok": True, "band": band, "header": header, "shape": img.shape}


PLACEMENTS = ("hisscube", "centred")


def cutout_origin(
    wcs: Any, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int], placement: str = "hisscube"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First column x0 and row y0 ``(k, 4)`` of the cutout around each position at every zoom
    level, and which of them are whole ``(k, 4)`` in a frame of zoom-0 ``shape`` (ny, nx).

    ``hisscube`` places them as HiSS-Cube does: ``int(pixel) - size / 2`` on the 0-based pixel
    position in the level's own WCS (CRPIX / 2^z, CD x 2^z; ``process_cutout_bounds`` in
    hisscube/utils/astrometry.py), in a frame of ``floor(n / 2^z)`` pixels, so cutouts built here
    match the user's cube pixel for pixel. ``centred`` rounds to the nearest pixel instead.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown cutout placement {placement!r}: expected one of {PLACEMENTS}")
    x, y = wcs.world_to_pixel_values(np.asarray(ra, float), np.asarray(dec, float))
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    shift = 0.0 if placement == "hisscube" else 0.5
    x0 = np.stack([cutout_start(x + shift * 2**z, z) for z in range(N_ZOOM)], axis=-1)
    y0 = np.stack([cutout_start(y + shift * 2**z, z) for z in range(N_ZOOM)], axis=-1)
    s = np.array([image_size(z) for z in range(N_ZOOM)])
    ny, nx = (np.array([n >> z for z in range(N_ZOOM)]) for n in shape[:2])  # floor(n / 2^z)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + s <= nx) & (y0 + s <= ny)
    return x0, y0, inside & (np.isfinite(x) & np.isfinite(y))[:, None]


def frame_cutouts(
    task: tuple[str, list[tuple[int, float, float]], str],
) -> list[tuple[int, str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Read one frame, make its zoom levels as HiSS-Cube does (the whole frame, halved level by
    level) and cut out every (target, ra, dec) of ``task`` at every level: (target, band,
    [(data, errors) per zoom]) in the HiSS-Cube unit (erg s^-1 cm^-2 A^-1 per fibre area). A
    target whose cutout is not whole at every level gets none. Runs on a worker."""
    path, targets, placement = task
    img, err, header = read_frame(path)
    band = str(header["FILTER"]).strip().lower()
    t = np.array([x[0] for x in targets])
    x0, y0, inside = cutout_origin(
        frame_wcs(header, path), [x[1] for x in targets], [x[2] for x in targets], img.shape, placement
    )
    scale = np.float32(nmgy_to_stored(band))
    levels = frame_levels(img * scale, err * scale)
    out = []
    for k in np.flatnonzero(inside.all(axis=1)):
        cut = []
        for z, (d, e) in enumerate(levels):
            s = image_size(z)
            sl = np.s_[y0[k, z] : y0[k, z] + s, x0[k, z] : x0[k, z] + s]
            cut.append((d[sl], e[sl]))
        out.append((int(t[k]), band, cut))
    return out


# -- spectra -------------------------------------------------------------------------------------
def _column(table: Any, name: str, path: Path) -> np.ndarray:
    for c in table.columns.names:
        if c.lower() == name:
            return np.asarray(table[c], dtype=np.float64)
    raise FitsError(f"{path}: HDU 1 has no column {name!r} (columns: {table.columns.names})")


def scan_spectrum(path: str | Path) -> dict[str, Any]:
    """Identity, plug position, redshift and class of a spectrum file, or why it cannot be used."""
    path = Path(path)
    try:
        with _open(path) as hdul:
            try:
                header = header_dict(hdul[0].header)
                n = len(hdul[1].data)
                loglam = _column(hdul[1].data, "loglam", path)
                info = hdul[2].data if len(hdul) > 2 else None
                z = float(info["Z"][0]) if info is not None and "Z" in info.columns.names else np.nan
                cls = (
                    str(info["CLASS"][0]).strip()
                    if info is not None and "CLASS" in info.columns.names
                    else ""
                )
            except FitsError:
                raise
            except Exception as e:
                raise FitsError(f"{path}: truncated or not an SDSS spectrum ({type(e).__name__}: {e})") from e
        missing = [k for k in ("PLUG_RA", "PLUG_DEC", "PLATEID", "MJD", "FIBERID") if k not in header]
        if missing or n < 2 or not np.all(np.isfinite(loglam)):
            raise FitsError(f"{path}: not an SDSS spectrum (missing {missing or 'a valid loglam column'})")
        grid = wavelength_grid(0)
        lo, hi = 10 ** float(loglam.min()), 10 ** float(loglam.max())
        if min(hi, grid[-1]) - max(lo, grid[0]) < 0.5 * (grid[-1] - grid[0]):
            raise FitsError(
                f"{path}: covers {lo:.0f}-{hi:.0f} A, less than half of the cube's {grid[0]:.0f}-"
                f"{grid[-1]:.0f} A grid: its zoom levels cannot be made"
            )
    except FitsError as e:
        return {"path": str(path), "ok": False, "reason": str(e)}
    header.update(Z=z, CLASS=cls)  # from HDU 2, so the cube carries them for readers without catalogues
    return {"path": str(path), "ok": True, "header": header, "ra": float(header["PLUG_RA"]),
            "dec": float(header["PLUG_DEC"]), "z": z, "class": cls}  # fmt: skip


def _edges(centres: np.ndarray) -> np.ndarray:
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def rebin_matrix(in_edges: np.ndarray, out_edges: np.ndarray) -> sparse.csr_matrix:
    """W with ``W[j, i]`` = share of output bin j covered by input bin i (length / output width):
    ``W @ f`` is the flux-conserving rebinned flux density, ``W**2 @ var`` its variance."""
    cuts = np.unique(np.concatenate([in_edges, out_edges]))
    mids = 0.5 * (cuts[1:] + cuts[:-1])
    i = np.searchsorted(in_edges, mids) - 1
    j = np.searchsorted(out_edges, mids) - 1
    ok = (i >= 0) & (i < in_edges.size - 1) & (j >= 0) & (j < out_edges.size - 1)
    w = np.diff(cuts)[ok] / np.diff(out_edges)[j[ok]]
    return sparse.csr_matrix((w, (j[ok], i[ok])), shape=(out_edges.size - 1, in_edges.size - 1))


def rebin_spectrum(
    wl: np.ndarray, flux: np.ndarray, err: np.ndarray, out_wl: np.ndarray, min_coverage: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Flux-conserving rebinning of a flux density (and its errors) onto ``out_wl``.

    Bad input pixels (non-finite flux or error) do not contribute; an output bin covered less than
    ``min_coverage`` by good pixels, or outside the input range, is NaN.
    """
    good = np.isfinite(flux) & np.isfinite(err)
    w = rebin_matrix(_edges(wl), _edges(out_wl))
    cover = w @ good.astype(np.float64)
    f = w @ np.where(good, flux, 0.0)
    var = (w.multiply(w)) @ np.where(good, err, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = cover >= min_coverage
        return np.where(keep, f / cover, np.nan), np.where(keep, np.sqrt(var) / cover, np.nan)


def spectrum_levels(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flux and error of a spectrum file at zoom levels 0..3 (float32), each level made from that
    spectrum alone, as HiSS-Cube makes them before it combines a target's spectra."""
    return all_spectrum_levels(*read_spectrum(path))


def read_spectrum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Flux and error of a spectrum file on the 4620-sample grid, erg s^-1 cm^-2 A^-1 (float64).

    ``flux x 1e-17``; error ``1 / sqrt(ivar) x 1e-17``, NaN (flux too) where ivar = 0.
    """
    path = Path(path)
    with _open(path) as hdul:
        try:
            t = hdul[1].data
            loglam, flux, ivar = (_column(t, c, path) for c in ("loglam", "flux", "ivar"))
        except FitsError:
            raise
        except Exception as e:
            raise FitsError(f"{path}: truncated or not an SDSS spectrum ({type(e).__name__}: {e})") from e
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan)
    flux = np.where(ivar > 0, flux, np.nan)
    return rebin_spectrum(10**loglam, flux * SPECTRUM_UNIT, err * SPECTRUM_UNIT, wavelength_grid(0))


# -- planning --------------------------------------------------------------------------------------
def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


GROUPINGS = ("healpix", "fof")


def group_targets(
    ra: Sequence[float],
    dec: Sequence[float],
    grouping: str = "healpix",
    healpix_order: int = 15,
    match_arcsec: float = 3.0,
) -> np.ndarray:
    """Target label of each spectrum, numbered in order of their first spectrum.

    ``healpix`` (HiSS-Cube's rule): spectra whose plug positions fall in the same nested HEALPix
    cell of ``healpix_order`` (15: cells about 6.4" across) are one target. ``fof``: positions
    linked within ``match_arcsec`` (friends of friends) are one target, whatever cell they are in.
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if ra.size == 0:
        return np.zeros(0, dtype=int)
    if grouping == "healpix":
        import astropy.units as u
        from astropy_healpix import HEALPix

        cells = HEALPix(nside=2**healpix_order, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
        first: dict[int, int] = {}
        return np.array([first.setdefault(int(c), len(first)) for c in cells])
    if grouping != "fof":
        raise ValueError(f"unknown target grouping {grouping!r}: expected one of {GROUPINGS}")
    xyz = _unit(ra, dec)
    n = len(xyz)
    chord = 2 * np.sin(np.radians(match_arcsec / 3600) / 2)
    pairs = np.array(sorted(cKDTree(xyz).query_pairs(chord)), dtype=int).reshape(-1, 2)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order: dict[int, int] = {}
    return np.array([order.setdefault(lab, len(order)) for lab in labels])


def plan_targets(
    spectra: list[dict], frames: list[dict], placement: str = "hisscube", **grouping: Any
) -> dict[str, Any]:
    """Targets from the usable spectra (``grouping``: see :func:`group_targets`), and the frames
    that hold a whole cutout of each at every zoom level, per band.

    A target's spectra are in HiSS-Cube's order, by observation time (TAI, else MJD), and its
    cutouts are cut around the first one's plug position, as HiSS-Cube cuts them (the cutouts of a
    target's first spectrum serve the whole target)."""
    labels = group_targets([s["ra"] for s in spectra], [s["dec"] for s in spectra], **grouping)
    n_t = int(labels.max()) + 1 if labels.size else 0
    spectra_of: list[list[int]] = [[] for _ in range(n_t)]
    for i, t in enumerate(labels):  # one pass: the spectra of each target, in file order
        spectra_of[t].append(i)
    spectra_of = [sorted(ids, key=lambda i: observation_time(spectra[i]["header"])) for ids in spectra_of]
    ra = np.array([spectra[ids[0]]["ra"] for ids in spectra_of])
    dec = np.array([spectra[ids[0]]["dec"] for ids in spectra_of])
    cover: list[dict[str, list[int]]] = [{b: [] for b in BANDS} for _ in range(n_t)]
    lower_level_off: set[int] = set()  # whole at zoom 0 in some frame, not at a lower level
    tree = cKDTree(_unit(ra, dec)) if n_t else None
    for j, fr in enumerate(frames):
        wcs = frame_wcs(fr["header"], fr["path"])
        ny, nx = fr["shape"]
        c_ra, c_dec = wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
        radius = np.hypot(nx, ny) / 2 * np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))  # degrees
        near = tree.query_ball_point(
            _unit(np.array([c_ra]), np.array([c_dec]))[0], 2 * np.sin(np.radians(radius))
        )
        if not near:
            continue
        near = np.array(sorted(near))
        _, _, inside = cutout_origin(wcs, ra[near], dec[near], (ny, nx), placement)
        for t in near[inside.all(axis=1)]:
            cover[t][fr["band"]].append(j)
        lower_level_off.update(near[inside[:, 0] & ~inside.all(axis=1)].tolist())
    bands_covered = [sum(bool(cover[t][b]) for b in BANDS) for t in range(n_t)]
    return {
        "labels": labels,
        "spectra": spectra_of,
        "ra": ra,
        "dec": dec,
        "cover": cover,
        "complete": [t for t, k in enumerate(bands_covered) if k == len(BANDS)],
        "outside": [t for t, k in enumerate(bands_covered) if k == 0],
        "incomplete": [t for t, k in enumerate(bands_covered) if 0 < k < len(BANDS)],
        "lower_level_off_frame": sorted(t for t in lower_level_off if bands_covered[t] < len(BANDS)),
        "placement": placement,
    }


# -- the build ---------------------------------------------------------------------------------------
FRAME_PATTERNS = ("frame-*.fits", "frame-*.fits.bz2")
# spectra are identified by their headers (PLATEID, MJD, FIBERID), not by their names: files named
# by objID or anything else are read too
SPECTRUM_PATTERNS = ("*.fits", "*.fit", "*.fits.gz")


def _files(d: Path, patterns: tuple[str, ...], what: str) -> tuple[list[Path], dict[str, str]]:
    """The files of ``d`` matching ``patterns``, and every other file there with why it is skipped."""
    if not d.is_dir():
        raise FitsError(f"{d}: no such directory of {what}")
    files = sorted({p for pat in patterns for p in d.glob(pat) if p.is_file()})
    skipped = {
        str(p): f"not read: its name matches none of {', '.join(patterns)}"
        for p in sorted(d.iterdir())
        if p.is_file() and p not in files and not p.name.startswith(".")
    }
    if not files:
        raise FitsError(f"{d}: no {what} ({' or '.join(patterns)}) found")
    return files, skipped


def build_cube(
    frames: str | Path,
    spectra: str | Path,
    out: str | Path,
    match_arcsec: float = 3.0,
    batch: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    client: Any = None,
    placement: str | None = None,
    grouping: str | None = None,
    healpix_order: int | None = None,
) -> dict[str, Any]:
    """Turn a directory of SDSS frames and one of spectra into a HiSS-Cube file; return the report.

    Scans files on ``client`` (``None``: Dask's in-process scheduler). Raises FitsError when no target ends
    up with whole cutouts in all five bands.
    """
    out = Path(out)
    placement = placement or config.get("io.cutout-placement")
    grouping = grouping or config.get("io.target-grouping")
    healpix_order = int(config.get("io.healpix-order") if healpix_order is None else healpix_order)
    if placement not in PLACEMENTS:
        raise FitsError(f"unknown cutout placement {placement!r}: expected one of {PLACEMENTS}")
    if grouping not in GROUPINGS:
        raise FitsError(f"unknown target grouping {grouping!r}: expected one of {GROUPINGS}")
    if out.exists() and not overwrite:
        raise FitsError(f"{out} exists; pass overwrite (--overwrite) to replace it")
    frame_files, frames_skipped = _files(Path(frames), FRAME_PATTERNS, "SDSS frames")
    spec_files, spectra_skipped = _files(Path(spectra), SPECTRUM_PATTERNS, "SDSS spectra")
    f_scan = list(
        map_ordered(
            scan_frame,
            [str(p) for p in frame_files],
            client,
            len(frame_files),
            desc="scan frames",
            progress=progress,
        )
    )
    s_scan = list(
        map_ordered(
            scan_spectrum,
            [str(p) for p in spec_files],
            client,
            len(spec_files),
            desc="scan spectra",
            progress=progress,
        )
    )
    good_f = [f for f in f_scan if f["ok"]]
    good_s = [s for s in s_scan if s["ok"]]
    plan = plan_targets(good_s, good_f, placement, grouping=grouping, healpix_order=healpix_order,
                        match_arcsec=match_arcsec)  # fmt: skip
    report: dict[str, Any] = {
        "frames": {"found": len(frame_files), "usable": len(good_f),
                   "rejected": {f["path"]: f["reason"] for f in f_scan if not f["ok"]},
                   "skipped": frames_skipped},
        "spectra": {"found": len(spec_files), "usable": len(good_s),
                    "rejected": {s["path"]: s["reason"] for s in s_scan if not s["ok"]},
                    "skipped": spectra_skipped},
        "targets": {"found": len(plan["cover"]), "written": len(plan["complete"]),
                    "outside_every_frame": len(plan["outside"]), "missing_bands": len(plan["incomplete"]),
                    "lower_level_off_frame": len(plan["lower_level_off_frame"])},
        "cutout_placement": placement,
        "target_grouping": grouping if grouping == "fof" else f"healpix order {healpix_order} (nested)",
    }  # fmt: skip
    keep = plan["complete"]
    if not keep:
        raise FitsError(
            f"no target has whole cutouts in all five bands at every zoom level ({CUTOUT_SIZE} to "
            f"{image_size(N_ZOOM - 1)} px, each cut from its level's halved frame): {report['targets']} "
            f"(frames rejected: {len(report['frames']['rejected'])}, spectra rejected: "
            f"{len(report['spectra']['rejected'])}; files skipped: "
            f"{len(frames_skipped) + len(spectra_skipped)}, named in the report)"
        )
    spec_of = [plan["spectra"][t] for t in keep]
    used_frames = sorted({j for t in keep for b in BANDS for j in plan["cover"][t][b]})
    frame_row = {j: k for k, j in enumerate(used_frames)}
    spec_rows = [i for ids in spec_of for i in ids]
    spec_row = {i: k for k, i in enumerate(spec_rows)}
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with HissCubeWriter(
            tmp, n_targets=len(keep), n_spectra=len(spec_rows), n_images=len(used_frames)
        ) as w:
            w.write_image_headers(0, [Path(good_f[j]["path"]).name for j in used_frames],
                                  [good_f[j]["header"] for j in used_frames])  # fmt: skip
            w.write_spectrum_headers(0, [Path(good_s[i]["path"]).name for i in spec_rows],
                                     [good_s[i]["header"] for i in spec_rows])  # fmt: skip
            for a in _progress(range(0, len(keep), batch), progress):
                ts = list(range(a, min(a + batch, len(keep))))
                _write_batch(w, a, ts, keep, spec_of, plan, good_f, good_s, frame_row, spec_row)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report["targets"]["spectra_per_target_max"] = max(len(s) for s in spec_of)
    write_text(out.with_name(out.name + ".build.json"), json.dumps(report, indent=1))
    return report


def _progress(it: range, show: bool) -> Any:
    from sfrdask.progress import track

    return track(it, len(it), "extract + write", enabled=show, unit="batches")


def _write_batch(
    w: HissCubeWriter,
    start: int,
    ts: list[int],
    keep: list[int],
    spec_of: list,
    plan: dict,
    frames: list[dict],
    spectra: list[dict],
    frame_row: dict,
    spec_row: dict,
) -> None:
    """Extract, combine and write targets ``ts`` (positions in ``keep``) at rows ``start:``."""
    by_frame: dict[int, list[tuple[int, float, float]]] = {}
    for k in ts:
        t = keep[k]
        for b in BANDS:
            for j in plan["cover"][t][b]:
                by_frame.setdefault(j, []).append((k, float(plan["ra"][t]), float(plan["dec"][t])))
    cut_tasks = [
        dask.delayed(frame_cutouts, pure=False)((frames[j]["path"], tg, plan["placement"]))
        for j, tg in by_frame.items()
    ]
    spec_ids = [i for k in ts for i in spec_of[k]]
    spec_tasks = [dask.delayed(spectrum_levels, pure=False)(spectra[i]["path"]) for i in spec_ids]
    cuts, specs = dask.compute(cut_tasks, spec_tasks)
    per: dict[tuple[int, str], list] = {}
    for j, found in zip(by_frame, cuts, strict=True):
        for k, band, levels in found:
            per.setdefault((k, band), []).append((j, levels))
    n = len(ts)
    shapes = [(n, 5, image_size(z), image_size(z)) for z in range(N_ZOOM)]
    images = [(np.full(sh, np.nan, np.float32), np.full(sh, np.nan, np.float32)) for sh in shapes]
    index = np.zeros((n, 5), dtype=np.int64)
    for r, k in enumerate(ts):
        for p, b in enumerate(BANDS):
            obs = per.get((k, b))
            if not obs:
                raise FitsError(
                    f"target at RA {plan['ra'][keep[k]]:.5f}: no {b} cutout came back from its frames"
                )
            for z, (img, ierr) in enumerate(images):  # epochs of a band: inverse-variance mean per level
                img[r, p], ierr[r, p] = combine_ivw([o[1][z][0] for o in obs], [o[1][z][1] for o in obs])
            index[r, p] = frame_row[obs[0][0]]
    got = dict(zip(spec_ids, specs, strict=True))
    spec_levels = []
    for z in range(N_ZOOM):  # the dense row of a level: the inverse-variance mean of its spectra there
        rows = [combine_ivw([got[i][z][0] for i in spec_of[k]], [got[i][z][1] for i in spec_of[k]])
                for k in ts]  # fmt: skip
        spec_levels.append(tuple(np.array([row[c] for row in rows], np.float32) for c in (0, 1)))
    w.write_targets(start, images, spec_levels, [[spec_row[i] for i in spec_of[k]] for k in ts], index)
