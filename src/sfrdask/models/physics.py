"""``physics-halpha``: the standard H-alpha estimate of the SFR, the baseline models must beat.

No training. For each spectrum (observed frame, erg s^-1 cm^-2 A^-1) and redshift:

1. H-alpha (with the [N II] 6548/6584 doublet beside it) and H-beta (with [O III] 4959/5007) are
   fitted as Gaussians on a linear continuum by weighted least squares in a rest-frame window
   around each line, for a grid of line widths, keeping the best; the fitted areas are the
   continuum-subtracted fluxes.
2. Classes before conversion, as MPA-JHU does (Brinchmann et al. 2004): with all four lines at
   S/N >= 3, the BPT diagram (log [N II]/H-alpha against log [O III]/H-beta) splits star-forming
   galaxies (below Kauffmann et al. 2003), composites (between) and AGN (above Kewley et al. 2001);
   with H-alpha and [N II] only, [N II]/H-alpha < 0.6 is low-S/N star forming, else low-S/N AGN;
   H-alpha wider than sigma = 700 km/s, or a broad H-alpha component (1,000-4,000 km/s) beside the
   narrow lines at S/N >= 10 and brighter than the narrow H-alpha, is a broad-line AGN. Only
   star-forming classes get an H-alpha SFR: the lines of the others are lit by the nucleus (NaN
   here; MPA-JHU uses D4000).
   H-alpha below S/N 3 gives the SFR of its 3-sigma upper limit, flagged as such.
3. Dust: the Balmer decrement against the case-B ratio 2.86 with the Cardelli et al. (1989)
   curve (k(H-alpha) = 2.53, k(H-beta) = 3.61) gives A(H-alpha); no correction where H-beta has
   S/N < 3 or the ratio is below 2.86.
4. L(H-alpha) = 4 pi d_L^2 F with flat LambdaCDM (H0 = 70, Om0 = 0.3);
   SFR = 7.9e-42 L(H-alpha) [erg/s] Msun/yr (Kennicutt 1998).
5. Aperture (``physics-halpha-aperture``): the fibre sees only the centre of a galaxy, so the
   fibre SFR is scaled by the r-band light of the whole cutout over the light inside the fibre
   (radius 1.5 arcsec), measured on the deblended image (Hopkins et al. 2003).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import erf

from sfrdask.bpt import SFR_CLASSES, bolton12, bpt_region
from sfrdask.cosmology import luminosity_distance_cm as dl
from sfrdask.models.registry import register

HALPHA, HBETA = 6564.61, 4862.68  # vacuum wavelengths (SDSS spectra are in vacuum), Angstrom
NII = (6585.27, 6549.86)  # [N II] doublet, fixed 3:1 ratio
OIII = (5008.24, 4960.30)  # [O III] doublet, fixed 2.98:1 ratio
COMPANION = {"halpha": (NII, 3.0), "hbeta": (OIII, 2.98)}  # (strong, weak) lines, strong/weak ratio
C_KMS = 299_792.458
K_HALPHA, K_HBETA = 2.53, 3.61  # Cardelli et al. (1989), R_V = 3.1
CASE_B = 2.86  # intrinsic H-alpha / H-beta
KENNICUTT = 7.9e-42  # Msun/yr per erg/s of H-alpha
FIBRE_ARCSEC, PIXEL_ARCSEC = 1.5, 0.396
WINDOWS = {"halpha": (6480.0, 6650.0), "hbeta": (4800.0, 5050.0)}  # rest frame
MAX_A_HALPHA = 3.0  # magnitudes: larger decrements come from noise or broad lines, not dust
LOG_SFR_RANGE = (-4.0, 3.0)  # Msun/yr, the range of the MPA-JHU catalogue
SIGMAS = np.geomspace(0.8, 80.0, 16)  # observed-frame line widths tried, Angstrom (to ~3,000 km/s)
# rest-frame widths (Angstrom) of the stellar Balmer absorption trough fitted under H-alpha and
# H-beta: A/F-star wings of young populations (~10-40 A wide; Gonzalez Delgado et al. 1999)
ABSORPTION_SIGMAS = (8.0, 16.0, 32.0)
TROUGH_OVER_LINE = 4.0  # a trough is fitted only when this many times wider than the line
MIN_SNR = 3.0  # lines used for classes and detections (Brinchmann et al. 2004)
BROAD_KMS = 700.0  # H-alpha sigma above this: a broad-line AGN
BROAD_SIGMAS_KMS = np.geomspace(1000.0, 4000.0, 6)  # widths tried for a broad H-alpha component
BROAD_SNR = 10.0  # a broad component at this S/N, brighter than the narrow H-alpha: a broad-line AGN
BROAD_WINDOW = (6350.0, 6800.0)  # rest frame
LOW_SN_NII_HA = 0.6  # [N II]/H-alpha that splits low-S/N star forming from low-S/N AGN
# the SDSS pipeline's SUBCLASS rule (Bolton et al. 2012; SDSS DR9 "spectroscopic catalogs" page)
STARBURST_EW = 50.0  # Angstrom: a star-forming galaxy with H-alpha EW above this is a starburst
BROADLINE_SNR, BROADLINE_KMS = 10.0, 200.0  # a line at this S/N wider than this: BROADLINE
# the per-spectrum fits, in the order predict() stores them
FIT_COLUMNS = ("halpha", "halpha_err", "halpha_width", "nii", "nii_err", "halpha_cont",
               "hbeta", "hbeta_err", "hbeta_width", "oiii", "oiii_err",
               "broad_halpha", "broad_halpha_err", "broad_kms")  # fmt: skip


def _profile(edges: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """A unit-flux Gaussian averaged over each pixel (flux density per Angstrom)."""
    cdf = 0.5 * (1 + erf((edges - centre) / (np.sqrt(2) * sigma)))
    return np.diff(cdf) / np.diff(edges)


def _edges(wl: np.ndarray) -> np.ndarray:
    mid = 0.5 * (wl[1:] + wl[:-1])
    return np.concatenate([[2 * wl[0] - mid[0]], mid, [2 * wl[-1] - mid[-1]]])


def _window(
    wl: np.ndarray, flux: np.ndarray, err: np.ndarray, z: float, rest: tuple[float, float]
) -> np.ndarray:
    """Good samples inside a rest-frame window."""
    lo, hi = (w * (1 + z) for w in rest)
    return (wl > lo) & (wl < hi) & np.isfinite(flux) & np.isfinite(err) & (err > 0)


def _wls(cols: list[np.ndarray], f: np.ndarray, wgt: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted least squares of ``f`` on ``cols``: chi^2, coefficients, the weighted design matrix."""
    a = np.stack(cols, 1) * wgt[:, None]
    coef, *_ = np.linalg.lstsq(a, f * wgt, rcond=None)
    return float(np.sum((a @ coef - f * wgt) ** 2)), coef, a


def _sd(a: np.ndarray) -> np.ndarray:
    """Standard errors of the coefficients of a weighted design matrix."""
    return np.sqrt(np.clip(np.diag(np.linalg.pinv(a.T @ a)), 0.0, None))


def fit_lines(
    wl: np.ndarray,
    flux: np.ndarray,
    err: np.ndarray,
    z: float,
    line: str,
    sigmas: np.ndarray = SIGMAS,
) -> tuple[float, float, float, float, float, float]:
    """Continuum-subtracted flux (erg s^-1 cm^-2) of ``line`` ('halpha' or 'hbeta') and its error,
    the line width (observed Angstrom) chosen from ``sigmas``, the flux and error of the strong
    line of its doublet ([N II] 6584 or [O III] 5007), fitted with the same width, and the
    continuum at the line's centre (erg s^-1 cm^-2 A^-1, the Balmer trough included, as in the
    pipeline's ``LINECONTLEVEL``); NaN where the window is not covered by enough good samples.

    The stellar continuum's Balmer absorption under the line is fitted with it: a broad Gaussian
    trough (rest sigma from :data:`ABSORPTION_SIGMAS`, depth free but never an emission) beside
    the narrow lines, the widths chosen by chi^2. Without it, absorption eats the emission line,
    H-beta most (the [O III]/H-beta of a star-forming galaxy rises toward the AGN side)."""
    m = _window(wl, flux, err, z, WINDOWS[line])
    if m.sum() < 8:
        return (np.nan,) * 6
    edges = _edges(wl)
    x, f, wgt = wl[m], flux[m], 1.0 / err[m]
    lam = HALPHA if line == "halpha" else HBETA
    (strong, weak), ratio = COMPANION[line]
    base = [np.ones_like(x), (x - lam * (1 + z)) / 100.0]
    troughs: list[tuple[float, np.ndarray | None]] = [(0.0, None)]
    troughs += [(a * (1 + z), _profile(edges, lam * (1 + z), a * (1 + z))[m]) for a in ABSORPTION_SIGMAS]
    best = (np.inf, *(np.nan,) * 6)
    for s in sigmas:
        doublet = _profile(edges, strong * (1 + z), s) + _profile(edges, weak * (1 + z), s) / ratio
        lines = [_profile(edges, lam * (1 + z), s)[m], doublet[m]]
        for width, trough in troughs:
            if trough is not None and width < TROUGH_OVER_LINE * s:
                continue  # as narrow as the line: the two would trade flux, not separate
            cols = base + lines + ([] if trough is None else [trough])
            chi2, coef, a = _wls(cols, f, wgt)
            if trough is not None:
                if coef[4] > 0:
                    continue  # a trough that fills in: emission, not the stellar absorption it stands for
                chi2 += np.log(len(x))  # BIC: one more parameter must earn its place
            if chi2 < best[0]:
                sd = _sd(a)
                dip = 0.0 if trough is None else coef[4] / (np.sqrt(2 * np.pi) * width)  # the trough's centre
                best = (
                    chi2,
                    float(coef[2]),
                    float(sd[2]),
                    float(s),
                    float(coef[3]),
                    float(sd[3]),
                    float(coef[0] + dip),
                )
    return best[1:]


def fit_broad_halpha(
    wl: np.ndarray, flux: np.ndarray, err: np.ndarray, z: float, sigma: float
) -> tuple[float, float, float]:
    """Flux, error and width (km/s) of a broad H-alpha component fitted beside the narrow H-alpha
    and [N II] (observed width ``sigma``), in a window wide enough for its wings."""
    m = _window(wl, flux, err, z, BROAD_WINDOW)
    if m.sum() < 16 or not np.isfinite(sigma):
        return np.nan, np.nan, np.nan
    edges = _edges(wl)
    x, f, wgt = wl[m], flux[m], 1.0 / err[m]
    centre = HALPHA * (1 + z)
    nii = _profile(edges, NII[0] * (1 + z), sigma) + _profile(edges, NII[1] * (1 + z), sigma) / 3
    fixed = [np.ones_like(x), (x - centre) / 100.0, _profile(edges, centre, sigma)[m], nii[m]]
    best = (np.inf, np.nan, np.nan, np.nan)
    for v in BROAD_SIGMAS_KMS:
        chi2, coef, a = _wls([*fixed, _profile(edges, centre, centre * v / C_KMS)[m]], f, wgt)
        if chi2 < best[0]:
            best = (chi2, float(coef[4]), float(_sd(a)[4]), float(v))
    return best[1:]


def fit_line(
    wl: np.ndarray, flux: np.ndarray, err: np.ndarray, z: float, line: str, sigmas: np.ndarray = SIGMAS
) -> tuple[float, float, float]:
    """Flux, error and width of ``line`` alone (see :func:`fit_lines`)."""
    return fit_lines(wl, flux, err, z, line, sigmas)[:3]


def classify(lines: dict[str, np.ndarray], z: np.ndarray, min_snr: float = MIN_SNR) -> np.ndarray:
    """The class of each spectrum (one of :data:`CLASSES`) from its fitted lines.

    ``lines`` holds ``halpha, nii, hbeta, oiii`` fluxes, their ``*_err`` and ``sigma_kms`` (the
    H-alpha width, rest frame), optionally ``broad_halpha`` and its ``_err`` (a broad component)."""
    snr = {k: lines[k] / lines[f"{k}_err"] for k in ("halpha", "nii", "hbeta", "oiii")}
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = {k: np.nan_to_num(v, nan=0.0) >= min_snr for k, v in snr.items()}
        x = np.log10(lines["nii"] / lines["halpha"])
        y = np.log10(lines["oiii"] / lines["hbeta"])
    out = np.full(z.shape, "NO_HALPHA", dtype=object)
    full = ok["halpha"] & ok["nii"] & ok["hbeta"] & ok["oiii"]
    out[full] = bpt_region(x, y)[full]
    partial = ok["halpha"] & ~full
    with np.errstate(invalid="ignore"):
        low_sf = partial & (~ok["nii"] | (x < np.log10(LOW_SN_NII_HA)))
    out[partial] = "AGN_LOW_SN"
    out[low_sf] = "SF_LOW_SN"
    broad = (np.nan_to_num(lines["sigma_kms"]) > BROAD_KMS) & ok["halpha"]  # in emission, not a trough
    if "broad_halpha" in lines:  # a significant broad component that outshines the narrow H-alpha
        b = np.nan_to_num(lines["broad_halpha"])
        with np.errstate(invalid="ignore", divide="ignore"):
            strong = np.nan_to_num(b / lines["broad_halpha_err"]) >= BROAD_SNR
        broad |= strong & ok["halpha"] & (b > lines["halpha"])
    out[broad] = "BROAD_LINE"
    out[~(np.isfinite(z) & (z > 0)) | ~np.isfinite(lines["halpha"])] = "NO_COVERAGE"
    return out.astype(str)


def sdss_subclass(lines: dict[str, np.ndarray], pixel_kms: float, min_snr: float = MIN_SNR) -> np.ndarray:
    """The SDSS pipeline's SUBCLASS of each spectrum by its own rule (Bolton et al. 2012), applied
    to these fits, so that users can compare with the pipeline directly: with the four BPT lines
    detected (S/N >= ``min_snr``), STARFORMING below log([O III]/H-beta) = 0.7 - 1.2
    (log([N II]/H-alpha) + 0.4), else AGN; STARFORMING with an H-alpha equivalent width above 50 A
    (observed frame, over the continuum at the line with its absorption, as ``LINEEW``) is
    STARBURST; ``BROADLINE`` is appended (alone without a class) where a line at S/N >= 10 has
    sigma > 200 km/s, only where a pixel (``pixel_kms``) is narrower than that: at coarser levels a
    200 km/s line is not resolved. The pipeline also asks the width's 5-sigma lower bound to exceed
    200 km/s; these fits have no width error. '' otherwise. The pipeline's line is laxer than
    Kauffmann et al. (2003): this is not the BPT class (:func:`classify`)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = {k: np.nan_to_num(lines[k] / lines[f"{k}_err"]) for k in ("halpha", "nii", "hbeta", "oiii")}
        x = np.log10(lines["nii"] / lines["halpha"])
        y = np.log10(lines["oiii"] / lines["hbeta"])
        sf = y < bolton12(x)
        burst = np.nan_to_num(lines["halpha_ew"]) > STARBURST_EW
    detected = np.all([v >= min_snr for v in snr.values()], axis=0) & np.isfinite(x) & np.isfinite(y)
    out = np.where(detected, np.where(sf, np.where(burst, "STARBURST", "STARFORMING"), "AGN"), "")
    width = {"halpha": "sigma_kms", "nii": "sigma_kms", "hbeta": "hbeta_sigma_kms", "oiii": "hbeta_sigma_kms"}
    wide = [(snr[k] >= BROADLINE_SNR) & (np.nan_to_num(lines[w]) > BROADLINE_KMS) for k, w in width.items()]
    broad = np.any(wide, axis=0) & (pixel_kms < BROADLINE_KMS)
    return np.where(broad, np.char.strip(np.char.add(out.astype(str), " BROADLINE")), out).astype(str)


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
    return dl(np.asarray(z, float))


class HalphaSFR:
    """The estimator: ``predict(...)`` -> log10 SFR [Msun/yr], NaN where H-alpha is not in the
    spectrum (no redshift, or redshifted beyond the red end) or is lit by an AGN; ``details`` keeps
    the line fits, the class (``bpt_class``) and ``upper_limit``."""

    def __init__(self, aperture: bool = False):
        self.aperture = aperture
        self.details: dict[str, np.ndarray] = {}

    def predict(
        self, wl: np.ndarray, spectra: np.ndarray, errors: np.ndarray, z: np.ndarray,
        r_images: np.ndarray | None = None, image_zoom: int = 0,
    ) -> np.ndarray:  # fmt: skip
        n = spectra.shape[0]
        fits = np.full((n, len(FIT_COLUMNS)), np.nan)
        for i in range(n):
            zi = float(z[i])
            if not (np.isfinite(zi) and zi > 0):
                continue
            ha = fit_lines(wl, spectra[i], errors[i], zi, "halpha")
            # H-beta with H-alpha's velocity width (robust when weak); its own where H-alpha is unmeasured
            w_hb = np.array([ha[2] * HBETA / HALPHA]) if np.isfinite(ha[2]) else SIGMAS
            hb = fit_lines(wl, spectra[i], errors[i], zi, "hbeta", w_hb)
            fits[i] = (*ha, *hb[:5], *fit_broad_halpha(wl, spectra[i], errors[i], zi, ha[2]))
        f = dict(zip(FIT_COLUMNS, fits.T, strict=True))
        zz = np.asarray(z, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            lines = {k: f[k] for k in FIT_COLUMNS if not k.endswith(("width", "cont"))}
            lines["sigma_kms"] = f["halpha_width"] / (HALPHA * (1 + zz)) * C_KMS
            lines["hbeta_sigma_kms"] = f["hbeta_width"] / (HBETA * (1 + zz)) * C_KMS
            lines["halpha_ew"] = f["halpha"] / f["halpha_cont"]  # observed frame, as the pipeline's LINEEW
        ha, hb, hb_err = lines["halpha"], lines["hbeta"], lines["hbeta_err"]
        ha_err = lines["halpha_err"]
        classes = classify(lines, np.asarray(z, float))
        a_ha = balmer_attenuation(ha, hb, hb_err)
        # H-alpha below MIN_SNR: the SFR of its 3-sigma upper limit
        upper = classes == "NO_HALPHA"
        ha_used = np.where(upper, np.maximum(ha, 0.0) + MIN_SNR * ha_err, ha)
        ha_used = np.where(np.isin(classes, SFR_CLASSES), ha_used, np.nan)
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
        pixel_kms = float(np.median(np.diff(np.log(wl)))) * C_KMS
        self.details = {**lines, "a_halpha": a_ha, "aperture": ap, "bpt_class": classes, "upper_limit": upper,
                        "sdss_subclass": sdss_subclass(lines, pixel_kms)}  # fmt: skip
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
