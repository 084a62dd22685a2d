"""``physics-halpha``: the standard H-alpha estimate of the SFR, the baseline models must beat.

No training. For each spectrum (observed frame, erg s^-1 cm^-2 A^-1) and redshift:

1. H-alpha (with the [N II] 6548/6584 doublet beside it) and H-beta are fitted as Gaussians on a
   linear continuum by weighted least squares in a rest-frame window around each line, for a
   grid of line widths, keeping the best; the fitted areas are the continuum-subtracted fluxes.
2. Dust: the Balmer decrement against the case-B ratio 2.86 with the Cardelli et al. (1989)
   curve (k(H-alpha) = 2.53, k(H-beta) = 3.61) gives A(H-alpha); no correction where H-beta has
   S/N < 3 or the ratio is below 2.86.
3. L(H-alpha) = 4 pi d_L^2 F with flat LambdaCDM (H0 = 70, Om0 = 0.3);
   SFR = 7.9e-42 L(H-alpha) [erg/s] Msun/yr (Kennicutt 1998).
4. Aperture (``physics-halpha-aperture``): the fibre sees only the centre of a galaxy, so the
   fibre SFR is scaled by the r-band light of the whole cutout over the light inside the fibre
   (radius 1.5 arcsec), measured on the deblended image (Hopkins et al. 2003).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import erf

from sfrdask.models.registry import register

HALPHA, HBETA = 6564.61, 4862.68  # vacuum wavelengths (SDSS spectra are in vacuum), Angstrom
NII = (6585.27, 6549.86)  # [N II] doublet, fixed 3:1 ratio
K_HALPHA, K_HBETA = 2.53, 3.61  # Cardelli et al. (1989), R_V = 3.1
CASE_B = 2.86  # intrinsic H-alpha / H-beta
KENNICUTT = 7.9e-42  # Msun/yr per erg/s of H-alpha
FIBRE_ARCSEC, PIXEL_ARCSEC = 1.5, 0.396
WINDOWS = {"halpha": (6480.0, 6650.0), "hbeta": (4800.0, 4920.0)}  # rest frame
MAX_A_HALPHA = 3.0  # magnitudes: larger decrements come from noise or broad lines, not dust
LOG_SFR_RANGE = (-4.0, 3.0)  # Msun/yr, the range of the MPA-JHU catalogue
SIGMAS = np.geomspace(0.8, 40.0, 14)  # observed-frame line widths tried, Angstrom


def _profile(edges: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """A unit-flux Gaussian averaged over each pixel (flux density per Angstrom)."""
    cdf = 0.5 * (1 + erf((edges - centre) / (np.sqrt(2) * sigma)))
    return np.diff(cdf) / np.diff(edges)


def _edges(wl: np.ndarray) -> np.ndarray:
    mid = 0.5 * (wl[1:] + wl[:-1])
    return np.concatenate([[2 * wl[0] - mid[0]], mid, [2 * wl[-1] - mid[-1]]])


def fit_line(
    wl: np.ndarray,
    flux: np.ndarray,
    err: np.ndarray,
    z: float,
    line: str,
    sigmas: np.ndarray = SIGMAS,
) -> tuple[float, float, float]:
    """Continuum-subtracted flux (erg s^-1 cm^-2) of ``line`` ('halpha' or 'hbeta'), its error and
    the line width (observed Angstrom) chosen from ``sigmas``; NaN where the window is not covered
    by enough good samples."""
    lo, hi = (w * (1 + z) for w in WINDOWS[line])
    m = (wl > lo) & (wl < hi) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    if m.sum() < 8:
        return np.nan, np.nan, np.nan
    edges = _edges(wl)
    x, f, wgt = wl[m], flux[m], 1.0 / err[m]
    lam = HALPHA if line == "halpha" else HBETA
    best = (np.inf, np.nan, np.nan, np.nan)
    for s in sigmas:
        cols = [np.ones_like(x), (x - lam * (1 + z)) / 100.0, _profile(edges, lam * (1 + z), s)[m]]
        if line == "halpha":
            nii = _profile(edges, NII[0] * (1 + z), s) + _profile(edges, NII[1] * (1 + z), s) / 3
            cols.append(nii[m])
        a = np.stack(cols, 1) * wgt[:, None]
        coef, *_ = np.linalg.lstsq(a, f * wgt, rcond=None)
        chi2 = float(np.sum((a @ coef - f * wgt) ** 2))
        if chi2 < best[0]:
            cov = np.linalg.pinv(a.T @ a)
            best = (chi2, float(coef[2]), float(np.sqrt(max(cov[2, 2], 0.0))), float(s))
    return best[1:]


def balmer_attenuation(
    ha: np.ndarray, hb: np.ndarray, hb_err: np.ndarray, min_snr: float = 3.0
) -> np.ndarray:
    """A(H-alpha) in magnitudes from the Balmer decrement; 0 where H-beta is too weak to use."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ha / hb
        ebv = 2.5 / (K_HBETA - K_HALPHA) * np.log10(ratio / CASE_B)
    ok = (hb / hb_err >= min_snr) & (ha > 0) & np.isfinite(ebv)
    return np.where(ok, np.clip(K_HALPHA * ebv, 0.0, MAX_A_HALPHA), 0.0)


def aperture_factor(r_images: np.ndarray, image_zoom: int, fibre_arcsec: float = FIBRE_ARCSEC) -> np.ndarray:
    """Total over in-fibre r-band flux of each cutout ``(n, s, s)`` (centred target), >= 1."""
    s = r_images.shape[-1]
    sub = 8  # sub-pixels per pixel side for the circular aperture
    c = (np.arange(s * sub) + 0.5) / sub - s / 2
    inside = (np.hypot(*np.meshgrid(c, c)) <= fibre_arcsec / (PIXEL_ARCSEC * 2**image_zoom)).astype(float)
    weight = inside.reshape(s, sub, s, sub).mean(axis=(1, 3))
    img = np.nan_to_num(r_images.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = img.sum(axis=(1, 2)) / (img * weight).sum(axis=(1, 2))
    return np.where(np.isfinite(ratio), np.clip(ratio, 1.0, 100.0), 1.0)


def luminosity_distance_cm(z: np.ndarray) -> np.ndarray:
    """Flat LambdaCDM (H0 = 70, Om0 = 0.3) luminosity distance in cm."""
    from sfrdask.synthetic.cosmology import luminosity_distance_cm as dl

    return dl(np.asarray(z, float))


class HalphaSFR:
    """The estimator: ``predict(...)`` -> log10 SFR [Msun/yr], NaN where H-alpha is not in the
    spectrum (no redshift, or redshifted beyond the red end); ``details`` keeps the line fits."""

    def __init__(self, aperture: bool = False):
        self.aperture = aperture
        self.details: dict[str, np.ndarray] = {}

    def predict(
        self, wl: np.ndarray, spectra: np.ndarray, errors: np.ndarray, z: np.ndarray,
        r_images: np.ndarray | None = None, image_zoom: int = 0,
    ) -> np.ndarray:  # fmt: skip
        n = spectra.shape[0]
        fits = np.full((n, 4), np.nan)
        for i in range(n):
            if np.isfinite(z[i]) and z[i] > 0:
                ha, ha_err, width = fit_line(wl, spectra[i], errors[i], float(z[i]), "halpha")
                fits[i, :2] = ha, ha_err
                if np.isfinite(width):  # H-beta: the same velocity width as H-alpha (robust when weak)
                    w_hb = np.array([width * HBETA / HALPHA])
                    fits[i, 2:] = fit_line(wl, spectra[i], errors[i], float(z[i]), "hbeta", w_hb)[:2]
        ha, ha_err, hb, hb_err = fits.T
        a_ha = balmer_attenuation(ha, hb, hb_err)
        # a line fitted as absent (<= 1 sigma) counts as its 1-sigma upper limit
        ha_used = np.where(ha > ha_err, ha, ha_err)
        with np.errstate(invalid="ignore", divide="ignore"):
            lum = (
                4 * np.pi * luminosity_distance_cm(np.clip(z, 1e-4, None)) ** 2 * ha_used * 10 ** (0.4 * a_ha)
            )
            log_sfr = np.log10(KENNICUTT * lum)
        ap = np.ones(n)
        if self.aperture:
            if r_images is None:
                raise ValueError("the aperture correction needs the r-band cutouts")
            ap = aperture_factor(r_images, image_zoom)
            log_sfr = log_sfr + np.log10(ap)
        self.details = {"halpha": ha, "halpha_err": ha_err, "hbeta": hb, "hbeta_err": hb_err,
                        "a_halpha": a_ha, "aperture": ap}  # fmt: skip
        return np.clip(log_sfr, *LOG_SFR_RANGE)


@register(
    "physics-halpha", "physics", ("spectrum",), "H-alpha SFR (Balmer decrement, Kennicutt 1998), no training"
)
def _halpha(shapes: dict[str, tuple[int, ...]], **options: Any) -> HalphaSFR:
    return HalphaSFR(aperture=False, **options)


@register(
    "physics-halpha-aperture",
    "physics",
    ("spectrum", "image"),
    "H-alpha SFR scaled from the fibre to the whole galaxy by r-band light, no training",
)
def _halpha_aperture(shapes: dict[str, tuple[int, ...]], **options: Any) -> HalphaSFR:
    return HalphaSFR(aperture=True, **options)
