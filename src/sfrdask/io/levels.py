"""Zoom levels of the HiSS-Cube format: grids, and how each level is made from the one above.

Images: each level is made from the whole frame of the level above (OpenCV's bicubic resize to half
its size; errors resized and divided by 4), and the level's cutout is then cut around the target's
position on that level's pixel grid. Spectra, each on its own: Gaussian smoothing (sigma = 2
samples, zeros beyond the ends), then linear interpolation onto half as many samples over the same
wavelength range; errors interpolated and divided by 2. See docs/formats.md.
Wavelengths are stored quantised to 10 significant bits, as the reference implementation does.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

N_ZOOM = 4
CUTOUT_SIZE = 64
SPECTRUM_SAMPLES = 4620
WL_MIN, WL_MAX = 3839.7244, 8914.597  # Angstrom, zoom-0 grid end points
BANDS = ("u", "g", "r", "i", "z")
BAND_MIDPOINTS = {"u": 3551.0, "g": 4686.0, "r": 6166.0, "i": 7480.0, "z": 8932.0}  # Angstrom


def image_size(zoom: int) -> int:
    """Cutout side in pixels at an image zoom level (64, 32, 16, 8)."""
    check_zoom(zoom)
    return CUTOUT_SIZE // 2**zoom


def spectrum_samples(zoom: int) -> int:
    """Samples per spectrum at a spectrum zoom level (4620, 2310, 1155, 577)."""
    check_zoom(zoom)
    return SPECTRUM_SAMPLES // 2**zoom


def check_zoom(zoom: int) -> None:
    if not isinstance(zoom, int | np.integer) or not 0 <= zoom < N_ZOOM:
        raise ValueError(f"zoom level must be an integer 0..{N_ZOOM - 1}, got {zoom!r}")


def parse_levels(text: str) -> tuple[int, ...]:
    """Zoom levels from text such as ``"0,2"`` (command lines, run files)."""
    try:
        out = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated zoom levels like 0,1,2,3, got {text!r}"
        ) from None
    if any(not 0 <= z < N_ZOOM for z in out):
        raise argparse.ArgumentTypeError(f"zoom levels are 0..{N_ZOOM - 1}, got {text!r}")
    return out


def parse_zoom(text: str) -> int:
    """One zoom level from text (``"2"``)."""
    z = parse_levels(text)
    if len(z) != 1:
        raise argparse.ArgumentTypeError(f"expected one zoom level 0..{N_ZOOM - 1}, got {text!r}")
    return z[0]


def float_compress(x: np.ndarray, mantissa_bits: int = 9) -> np.ndarray:
    """Round float32 values to 10 significant bits (9 stored mantissa bits plus the implicit one).

    This reproduces the wavelengths of real HiSS-Cube files: 3840, 3840, 3840, 3844, 3844 at zoom 0.
    """
    a = np.ascontiguousarray(x, dtype=np.float32).copy()
    bits = a.view(np.uint32)
    drop = 23 - mantissa_bits
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    finite = np.isfinite(a)
    bits[finite] = (bits[finite] + half) & mask
    return a


def nmgy_to_stored(band: str) -> float:
    """Factor from SDSS nanomaggies to the HiSS-Cube image unit (erg s^-1 cm^-2 A^-1 per fibre area)."""
    return 3.631e-6 * 2.99792458e-5 / BAND_MIDPOINTS[band] ** 2 * 78.5


def combine_ivw(fluxes: list[np.ndarray], errors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean of several observations, in float64 (as HiSS-Cube does);
    NaN where no observation has a finite value and error."""
    f = np.stack(fluxes).astype(np.float64)
    e = np.stack(errors).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(np.isfinite(f) & (e > 0), 1.0 / e**2, 0.0)
        wsum = w.sum(axis=0)
        mean = (np.where(w > 0, f, 0.0) * w).sum(axis=0) / wsum
        sig = np.sqrt(1.0 / wsum)
    bad = wsum == 0
    mean[bad] = np.nan
    sig[bad] = np.nan
    return mean, sig


def wavelength_grid(zoom: int) -> np.ndarray:
    """The exact (float64) wavelength grid of a spectrum zoom level, in Angstrom."""
    return np.linspace(WL_MIN, WL_MAX, spectrum_samples(zoom))


def stored_wavelengths(zoom: int) -> np.ndarray:
    """The wavelength dataset as a HiSS-Cube file stores it (float32, float-compressed)."""
    return float_compress(wavelength_grid(zoom).astype(np.float32))


def _halve(a: np.ndarray) -> np.ndarray:
    """OpenCV's bicubic resize of the last two axes ``(..., H, W)`` to ``(H // 2, W // 2)``, float32."""
    import cv2  # a heavy import, needed only where levels are made

    a = np.asarray(a, dtype=np.float32)
    h, w = a.shape[-2:]
    flat = np.moveaxis(a.reshape(-1, h, w), 0, -1)  # (H, W, channels): one call for the stack
    size, cubic = (w // 2, h // 2), cv2.INTER_CUBIC
    out = [  # OpenCV takes at most 512 channels a call
        cv2.resize(np.ascontiguousarray(flat[..., c : c + 512]), size, interpolation=cubic)
        for c in range(0, flat.shape[-1], 512)
    ]
    out = np.concatenate([o.reshape(h // 2, w // 2, -1) for o in out], axis=-1)
    return np.moveaxis(out, -1, 0).reshape(*a.shape[:-2], h // 2, w // 2)


def frame_levels(data: np.ndarray, errors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Zoom 0..3 of whole frames ``(..., H, W)``, as HiSS-Cube makes them: each level is OpenCV's
    bicubic resize (INTER_CUBIC) of the level above to ``W // 2 x H // 2``; errors are resized the
    same way and divided by 4. A NaN pixel spreads to the pixels whose kernel reaches it."""
    levels = [(np.asarray(data, np.float32), np.asarray(errors, np.float32))]
    for _ in range(1, N_ZOOM):
        d, e = levels[-1]
        levels.append((_halve(d), _halve(e) / np.float32(4.0)))
    return levels


def level_pixel(pixel: np.ndarray | float, zoom: int) -> np.ndarray:
    """0-based pixel coordinate at ``zoom`` of a zoom-0 one. HiSS-Cube scales a frame's WCS per
    level (CRPIX / 2^z, CD x 2^z), which maps 1-based pixel p to p / 2^z."""
    return (np.asarray(pixel, dtype=np.float64) + 1.0) / 2**zoom - 1.0


def cutout_start(pixel: np.ndarray | float, zoom: int) -> np.ndarray:
    """First row/column of the level-``zoom`` cutout around a zoom-0 pixel position: HiSS-Cube's
    ``int(pixel) - size / 2`` on the level's own pixel position (process_cutout_bounds)."""
    p = level_pixel(pixel, zoom)
    with np.errstate(invalid="ignore"):
        return np.floor(np.nan_to_num(p, nan=-1e9)).astype(np.int64) - image_size(zoom) // 2


def downsample_spectra(flux: np.ndarray, errors: np.ndarray, zoom_from: int) -> tuple[np.ndarray, np.ndarray]:
    """One spectrum zoom step for ``(..., n)`` spectra on the level-``zoom_from`` grid, as HiSS-Cube
    makes it for each spectrum on its own.

    Flux: astropy's Gaussian smoothing (sigma = 2 samples; zeros beyond both ends, so the first and
    last few samples drop; NaN samples interpolated from their neighbours), then linear
    interpolation onto half as many samples over the same range. Errors: interpolated, not
    smoothed, and divided by 2. The flux stays finite where the error is NaN, as in HiSS-Cube's
    chain of levels (the next level smooths it); :func:`all_spectrum_levels` masks it.
    """
    from astropy.convolution import Gaussian1DKernel, convolve  # astropy: only where spectrum levels are made

    x_from = wavelength_grid(zoom_from)
    x_to = wavelength_grid(zoom_from + 1)
    n = x_from.size
    f = np.asarray(flux, dtype=np.float64).reshape(-1, n)
    e = np.asarray(errors, dtype=np.float64).reshape(-1, n)
    kernel = Gaussian1DKernel(stddev=2).array[None, :]
    with warnings.catch_warnings():  # an all-NaN spectrum stays NaN; astropy says so at length
        warnings.simplefilter("ignore")
        smooth = convolve(f, kernel, boundary="fill", fill_value=0.0, nan_treatment="interpolate",
                          normalize_kernel=True, preserve_nan=False)  # fmt: skip
    idx = np.interp(x_to, x_from, np.arange(n))
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    t = idx - lo
    with np.errstate(invalid="ignore"):
        f_out = smooth[:, lo] * (1 - t) + smooth[:, hi] * t
        e_out = (e[:, lo] * (1 - t) + e[:, hi] * t) / 2.0
    shape = (*np.shape(flux)[:-1], x_to.size)
    return f_out.reshape(shape), e_out.reshape(shape)  # float64: the next level starts from these


def all_spectrum_levels(flux: np.ndarray, errors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Zoom 0..3 (float32) of spectra on the 4620-sample grid, each level made in float64 from the
    one above, as HiSS-Cube does. A sample whose error is NaN is NaN in flux too: the dense row's
    inverse-variance mean has no weight there."""
    levels = [(np.asarray(flux, np.float64), np.asarray(errors, np.float64))]
    for z in range(1, N_ZOOM):
        levels.append(downsample_spectra(*levels[-1], zoom_from=z - 1))
    return [(np.where(np.isnan(e), np.nan, f).astype(np.float32), e.astype(np.float32)) for f, e in levels]
