"""Five-band cutouts at every zoom level (64 x 64 at 0.396 arcsec/pixel, 32, 16, 8), in the
HiSS-Cube image unit, made as HiSS-Cube makes them from a frame.

Each component (the target and any neighbours) is a Sersic profile or a point source, rendered on
a 2x oversampled grid with a margin (so light from just outside spills in), normalised to its
analytic total flux, convolved with the band's Gaussian PSF in Fourier space and binned to 0.396"
pixels. What is rendered is a *stamp*: a piece of a frame, ``STAMP_PAD`` pixels wider than the
cutout on each side, whose corner sits on a frame pixel divisible by 2^3, so that halving the stamp
is halving the frame there. Noise: sky per band from the SDSS 5-sigma depths plus source Poisson
noise; a few stamps carry a masked (NaN) bad column. The zoom levels are then made as HiSS-Cube
makes them (:func:`sfrdask.io.levels.frame_levels`: the stamp halved level by level with OpenCV's
bicubic resize) and each level's cutout is cut around the fibre position on that level's pixel
grid (:func:`sfrdask.io.levels.cutout_start`), so a lower level is not a downsampled 64 px cutout:
its centre pixel and PSF phase differ, as in the user's cube.
"""

from __future__ import annotations

import numpy as np

from sfrdask.io.levels import BANDS, CUTOUT_SIZE, cutout_start, frame_levels, image_size, nmgy_to_stored
from sfrdask.synthetic.population import sersic_b, sersic_enclosed

PIXEL = 0.396  # arcsec
OVERSAMPLE = 2
STAMP_PAD = 32  # frame pixels beyond the cutout on each side: 4 even at zoom 3 (8 px cutouts)
STAMP = CUTOUT_SIZE + 2 * STAMP_PAD
MARGIN = 16  # output pixels rendered on each side beyond the stamp
DEPTH_5SIGMA = {"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5}
SEEING_SCALE = {"u": 1.12, "g": 1.06, "r": 1.0, "i": 0.95, "z": 0.95}  # FWHM relative to r
GAIN_TERM = 1.0e-3  # nanomaggy variance per nanomaggy of source flux (NMGY / gain)


def sky_sigma_nmgy(band: str, seeing_fwhm: float | np.ndarray) -> np.ndarray:
    """Per-pixel sky noise (nanomaggies) that gives the SDSS 5-sigma point-source depth."""
    f5 = 10 ** (-0.4 * (DEPTH_5SIGMA[band] - 22.5))
    sigma_px = np.asarray(seeing_fwhm) / 2.3548 / PIXEL
    return f5 / 5.0 / np.sqrt(4 * np.pi * sigma_px**2)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Centres of the oversampled sub-pixels, in output-pixel units relative to the stamp's centre
    (which is the zoom-0 cutout's centre)."""
    n = (STAMP + 2 * MARGIN) * OVERSAMPLE
    c = (np.arange(n) + 0.5) / OVERSAMPLE - MARGIN - STAMP / 2
    return np.meshgrid(c, c, indexing="xy")


_X, _Y = _grid()


def sersic_image(x0, y0, re_px, n, ba, pa_deg) -> np.ndarray:
    """Unit-total-flux Sersic profile on the oversampled grid (flux per sub-pixel)."""
    th = np.deg2rad(pa_deg)
    dx, dy = _X - x0, _Y - y0
    xr = dx * np.cos(th) + dy * np.sin(th)
    yr = -dx * np.sin(th) + dy * np.cos(th)
    r = np.sqrt(xr**2 + (yr / ba) ** 2)
    r = np.maximum(r, 0.25 / OVERSAMPLE)
    img = np.exp(-sersic_b(n) * ((r / re_px) ** (1.0 / n) - 1.0))
    half = STAMP / 2 + MARGIN
    target = sersic_enclosed(np.array(half), np.sqrt(ba) * re_px, n)  # share inside the rendered area
    return img * (target / img.sum())


def point_image(x0: float, y0: float) -> np.ndarray:
    """A point source on the oversampled grid: flux shared bilinearly between four sub-pixels."""
    n = _X.shape[0]
    fx = (x0 + MARGIN + STAMP / 2) * OVERSAMPLE - 0.5
    fy = (y0 + MARGIN + STAMP / 2) * OVERSAMPLE - 0.5
    img = np.zeros((n, n))
    ix, iy = int(np.floor(fx)), int(np.floor(fy))
    tx, ty = fx - ix, fy - iy
    for dx, dy, w in (
        (0, 0, (1 - tx) * (1 - ty)),
        (1, 0, tx * (1 - ty)),
        (0, 1, (1 - tx) * ty),
        (1, 1, tx * ty),
    ):
        if 0 <= iy + dy < n and 0 <= ix + dx < n:
            img[iy + dy, ix + dx] += w
    return img


def _psf_convolve_bin(pre: np.ndarray, fwhm_arcsec: float) -> np.ndarray:
    """Convolve with a Gaussian PSF (in Fourier space), bin to output pixels and crop the margin."""
    n = pre.shape[-1]
    sigma_sub = fwhm_arcsec / 2.3548 / PIXEL * OVERSAMPLE
    k = np.fft.fftfreq(n)
    kr = np.fft.rfftfreq(n)
    transfer = np.exp(-2 * np.pi**2 * sigma_sub**2 * (k[:, None] ** 2 + kr[None, :] ** 2))
    conv = np.fft.irfft2(np.fft.rfft2(pre) * transfer, s=(n, n))
    m = n // OVERSAMPLE
    binned = conv.reshape(m, OVERSAMPLE, m, OVERSAMPLE).sum(axis=(1, 3))
    return binned[MARGIN : MARGIN + STAMP, MARGIN : MARGIN + STAMP]


def component_image(c: dict) -> np.ndarray:
    """Pre-PSF unit-flux image of one component (dict with x, y, point, re_arcsec, sersic, ba, pa)."""
    if c["point"]:
        return point_image(c["x"], c["y"])
    return sersic_image(c["x"], c["y"], c["re_arcsec"] / PIXEL, c["sersic"], c["ba"], c["pa"])


def model_stamp(components: list[dict], seeing_r: float) -> np.ndarray:
    """The noise-free stamp ``(5, STAMP, STAMP)`` in nanomaggies per pixel.

    ``components[i]["flux"]`` holds the five band fluxes in nanomaggies; positions ``x, y`` are
    relative to the zoom-0 cutout's centre.
    """
    profiles = [component_image(c) for c in components]
    model = np.empty((5, STAMP, STAMP))
    for b, band in enumerate(BANDS):
        pre = sum(c["flux"][b] * p for c, p in zip(components, profiles, strict=True))
        model[b] = _psf_convolve_bin(pre, seeing_r * SEEING_SCALE[band])
    return model


def cutout_levels(
    data: np.ndarray, errors: np.ndarray, fibre_x: float, fibre_y: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cutouts of every zoom level from stamps ``(..., STAMP, STAMP)``: the stamps halved level
    by level as HiSS-Cube halves a frame, each level cut around the fibre, whose position is given
    in zoom-0 cutout pixels (0-based; HiSS-Cube's rule puts it in [32, 33) at zoom 0)."""
    out = []
    for z, (d, e) in enumerate(frame_levels(data, errors)):
        s = image_size(z)
        x0, y0 = (int(cutout_start(STAMP_PAD + p, z)) for p in (fibre_x, fibre_y))
        if not (0 <= x0 <= d.shape[-1] - s and 0 <= y0 <= d.shape[-2] - s):
            raise ValueError(f"fibre at ({fibre_x}, {fibre_y}) leaves the zoom-{z} cutout outside the stamp")
        out.append((d[..., y0 : y0 + s, x0 : x0 + s], e[..., y0 : y0 + s, x0 : x0 + s]))
    return out


def render_cutout(
    rng: np.random.Generator, components: list[dict], seeing_r: float, fibre: tuple[float, float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A noisy 5-band cutout and its errors at every zoom level, in the stored unit (float32):
    ``[(data, errors) of shape (5, s, s) for s = 64, 32, 16, 8]``."""
    model = model_stamp(components, seeing_r)
    data = np.empty_like(model)
    err = np.empty_like(model)
    for b, band in enumerate(BANDS):
        fwhm = seeing_r * SEEING_SCALE[band]
        sigma = np.sqrt(sky_sigma_nmgy(band, fwhm) ** 2 + GAIN_TERM * np.clip(model[b], 0, None))
        scale = nmgy_to_stored(band)
        data[b] = (model[b] + rng.normal(0, 1, model[b].shape) * sigma) * scale
        err[b] = sigma * scale
    if rng.random() < 0.03:  # a masked bad column of the frame, as SDSS frames have
        col = STAMP_PAD + rng.integers(0, CUTOUT_SIZE)
        data[:, :, col] = np.nan
        err[:, :, col] = np.nan
    return cutout_levels(data.astype(np.float32), err.astype(np.float32), *fibre)
