"""Zoom levels of the HiSS-Cube format: grids, and how each level is made from the one above.

Images: bicubic 2x downsampling per level; errors downsampled the same way and divided by 4.
Spectra: Gaussian smoothing (sigma = 2 samples), then linear interpolation onto half as many
samples over the same wavelength range; errors interpolated and divided by 2.
Wavelengths are stored quantised to 10 significant bits, as the reference implementation does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    import argparse

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
    import argparse

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


# Keys (a = -0.5) bicubic weights at offsets -1.5, -0.5, +0.5, +1.5 from a 2x2 block centre.
_BICUBIC_HALF = np.array([-0.0625, 0.5625, 0.5625, -0.0625])


def _bicubic_half(a: np.ndarray, axis: int) -> np.ndarray:
    """Sample ``a`` at the centres of pixel pairs along ``axis`` with the bicubic kernel (edges
    replicated). A NaN inside the 4-pixel support makes the output NaN: bad pixels never vanish."""
    a = np.moveaxis(a, axis, -1)
    p = np.concatenate([a[..., :1], a, a[..., -1:]], axis=-1)
    n = a.shape[-1] // 2
    out = sum(w * p[..., k : k + 2 * n : 2] for k, w in enumerate(_BICUBIC_HALF))
    return np.moveaxis(out, -1, axis)


def downsample_images(data: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image zoom step for a stack ``(..., y, x)``: bicubic 2x downsampling.

    Values are interpolated at the centres of 2x2 blocks (surface brightness is kept); errors go
    through the same operation and are divided by 4, as the format specifies.
    """

    def _down(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        return _bicubic_half(_bicubic_half(a, -1), -2).astype(np.float32)

    return _down(data), _down(errors) / np.float32(4.0)


def downsample_spectra(flux: np.ndarray, errors: np.ndarray, zoom_from: int) -> tuple[np.ndarray, np.ndarray]:
    """One spectrum zoom step for ``(..., n)`` arrays on the level-``zoom_from`` grid.

    NaN samples stay NaN where they dominate the smoothing kernel (weight > 0.5), and are
    otherwise bridged by the normalised convolution, so a masked pixel never leaks as zero.
    """
    x_from = wavelength_grid(zoom_from)
    x_to = wavelength_grid(zoom_from + 1)
    good = np.isfinite(flux) & np.isfinite(errors)
    w = ndimage.gaussian_filter1d(good.astype(np.float64), 2.0, axis=-1, mode="nearest")
    f = ndimage.gaussian_filter1d(np.where(good, flux, 0.0).astype(np.float64), 2.0, axis=-1, mode="nearest")
    e = np.where(good, errors, 0.0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(w > 0.5, f / w, np.nan)
        e = np.where(w > 0.5, e, np.nan)

    def _interp(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1, a.shape[-1])
        idx = np.interp(x_to, x_from, np.arange(x_from.size))
        lo = np.floor(idx).astype(int)
        hi = np.minimum(lo + 1, x_from.size - 1)
        t = idx - lo
        out = flat[:, lo] * (1 - t) + flat[:, hi] * t
        return out.reshape(*a.shape[:-1], x_to.size)

    return _interp(f).astype(np.float32), (_interp(e) / 2.0).astype(np.float32)


def all_image_levels(data: np.ndarray, errors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Zoom 0..3 of an image stack whose last two axes are 64 x 64."""
    levels = [(data.astype(np.float32), errors.astype(np.float32))]
    for _ in range(1, N_ZOOM):
        levels.append(downsample_images(*levels[-1]))
    return levels


def all_spectrum_levels(flux: np.ndarray, errors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Zoom 0..3 of spectra on the 4620-sample grid."""
    levels = [(flux.astype(np.float32), errors.astype(np.float32))]
    for z in range(1, N_ZOOM):
        levels.append(downsample_spectra(*levels[-1], zoom_from=z - 1))
    return levels
