"""Read SDSS frame and spectrum FITS files as HiSS-Cube stores them: frames in the HiSS-Cube unit
with errors from the SDSS recipe (calibration vector, sky, CCD gain and dark variance), their WCS
and cutouts at every zoom level; spectra identified by their headers (SDSS-I/II and BOSS) and
rebinned flux-conserving onto the 4620-sample grid and the levels below it.

:mod:`sfrdask.fits_to_cube` plans targets from these and writes the cube.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, sparse

from sfrdask.choices import PLACEMENTS
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import (
    BANDS,
    N_ZOOM,
    all_spectrum_levels,
    cutout_start,
    frame_levels,
    image_size,
    nmgy_to_stored,
    wavelength_grid,
)

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
    from astropy.io import fits  # astropy: only where FITS files are read (not on every reader of io)

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
    from astropy.wcs import WCS  # astropy: only where a WCS is used

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


def read_line_fits(path: str | Path) -> dict[str, tuple[float, float]]:
    """The SDSS pipeline's own emission-line fits of a spectrum file (HDU ``SPZLINE``): line name
    (``H_alpha``, ``[N_II] 6583``, ...) -> (flux, error) in erg s^-1 cm^-2, ``LINEAREA`` and
    ``LINEAREA_ERR`` x 1e-17. A line the pipeline did not measure (``LINEAREA_ERR`` = -1) has error
    NaN, never a zero flux that looks measured. A file without the HDU raises :class:`FitsError`."""
    path = Path(path)
    with _open(path) as hdul:
        if "SPZLINE" not in hdul:
            raise FitsError(f"{path}: no SPZLINE HDU (the pipeline's emission-line fits)")
        t = hdul["SPZLINE"].data
        missing = [c for c in ("LINENAME", "LINEAREA", "LINEAREA_ERR") if c not in t.columns.names]
        if missing:
            raise FitsError(f"{path}: HDU SPZLINE has no column {missing[0]!r} (columns: {t.columns.names})")
        names, area, err = (np.asarray(t[c]) for c in ("LINENAME", "LINEAREA", "LINEAREA_ERR"))
    out = {}
    for name, a, e in zip(names, area, err, strict=True):
        measured = np.isfinite(e) and e > 0
        out[str(name).strip()] = (float(a) * SPECTRUM_UNIT, float(e) * SPECTRUM_UNIT if measured else np.nan)
    return out
