"""Fibre spectra on the 4620-sample HiSS-Cube grid, in erg s^-1 cm^-2 A^-1.

Galaxies: a young + old stellar continuum (4000 A break from ~1.15 to ~1.9) scaled to the light in
the fibre, plus emission lines whose H-alpha flux is the *fibre* SFR (Kennicutt 1998) dimmed by
dust (Cardelli et al. 1989) at the luminosity distance. Quasars: f_nu ~ nu^-0.44 and broad lines.
Stars: black bodies with absorption lines. Noise follows SDSS: S/N ~ 5-15 per pixel near the
magnitude limit, worse at the blue end and at sky lines; some pixels are masked (NaN).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from sfrdask.bpt import kauffmann03
from sfrdask.cosmology import luminosity_distance_cm
from sfrdask.io.levels import BAND_MIDPOINTS, combine_ivw, wavelength_grid
from sfrdask.synthetic.population import KENNICUTT

C_KMS = 299792.458
NMGY_CGS = 3.631e-29  # erg s^-1 cm^-2 Hz^-1
UNIT = 1e-17
CARDELLI_K = {
    3727.1: 4.75,
    4341.7: 4.16,
    4862.7: 3.61,
    4960.3: 3.52,
    5008.2: 3.47,
    6549.9: 2.54,
    6564.6: 2.53,
    6585.3: 2.52,
    6718.3: 2.44,
    6732.7: 2.43,
}
# absorption features: rest wavelength, width (A), depth for an old population
ABSORPTION = (
    (3934.8, 6.0, 0.35),
    (3969.6, 6.0, 0.3),
    (4305.0, 12.0, 0.12),
    (5176.0, 15.0, 0.12),
    (5895.0, 6.0, 0.1),
    (4102.9, 8.0, 0.05),
    (4862.7, 8.0, 0.04),
)
SKY_LINES = (5578.5, 6301.7, 7605.0)
# LINER emission of old populations: [N II] 6584 rest equivalent width x q_old^4 (Angstrom), and
# each line's flux over it ([N II]/H-alpha 2, H-alpha/H-beta 3.1, [O III]/H-beta 1.5: above Kewley 2001)
LINER_EW = 2.0
LINER_LINES = {6585.3: 1.0, 6549.9: 1 / 3, 6564.6: 0.5, 4862.7: 0.5 / 3.1, 5008.2: 0.75 / 3.1}
LINER_LINES[4960.3] = LINER_LINES[5008.2] / 2.98


def fnu_to_flambda(nmgy: np.ndarray, wavelength: np.ndarray | float) -> np.ndarray:
    """nanomaggies -> erg s^-1 cm^-2 A^-1 at ``wavelength`` (A)."""
    return nmgy * NMGY_CGS * 2.99792458e18 / np.asarray(wavelength) ** 2


def _lines(wl_edges: np.ndarray, centres: np.ndarray, fluxes: np.ndarray, sigma_a: np.ndarray) -> np.ndarray:
    """Gaussian lines integrated over pixels (flux conserving): (k, L) centres/fluxes -> (k, npix)."""
    s = np.sqrt(2.0) * sigma_a[..., None]
    cdf = 0.5 * (1 + erf((wl_edges[None, None, :] - centres[..., None]) / s))
    per_pix = np.diff(cdf, axis=-1) * fluxes[..., None]
    return per_pix.sum(axis=1) / np.diff(wl_edges)[None, :]


def _edges(wl: np.ndarray) -> np.ndarray:
    mid = 0.5 * (wl[1:] + wl[:-1])
    return np.concatenate([[wl[0] - (mid[0] - wl[0])], mid, [wl[-1] + (wl[-1] - mid[-1])]])


def stellar_continuum(rest_wl: np.ndarray, q_old: np.ndarray) -> np.ndarray:
    """Relative f_lambda of a young/old mixture (k, npix), with the 4000 A break and absorption."""
    x = rest_wl / 5500.0
    step = 1.0 / (1.0 + np.exp(-(rest_wl - 4000.0) / 15.0))
    young = x ** (-1.3) * (1.0 + 0.12 * step)
    old = x**0.3 * (1.0 + 0.75 * step)
    absorb = np.ones_like(rest_wl)
    for c, w, depth in ABSORPTION:
        absorb = absorb - depth * np.exp(-0.5 * ((rest_wl - c) / w) ** 2)
    young_abs = 1.0 - 0.3 * (1.0 - absorb)
    q = q_old[:, None]
    return (1 - q) * young * young_abs + q * old * absorb


def _normalise(shape: np.ndarray, wl: np.ndarray, r_flambda: np.ndarray) -> np.ndarray:
    """Scale each row so its mean over the r band (5500-6800 A observed) equals ``r_flambda``."""
    band = (wl > 5500) & (wl < 6800)
    return shape * (r_flambda / shape[:, band].mean(axis=1))[:, None]


def galaxy_spectra(
    t: dict[str, np.ndarray], f_star: np.ndarray, f_sf: np.ndarray, wl: np.ndarray
) -> np.ndarray:
    """Noise-free fibre spectra of galaxies (k, npix), erg s^-1 cm^-2 A^-1."""
    z = t["z"]
    rest = wl[None, :] / (1 + z[:, None])
    r_fibre = fnu_to_flambda(10 ** (-0.4 * (t["mag"][:, 2] - 22.5)) * f_star, BAND_MIDPOINTS["r"])
    model = _normalise(stellar_continuum(rest, t["q_old"]), wl, r_fibre)

    dl = luminosity_distance_cm(z)
    l_ha = 10 ** (t["logsfr"] + np.log10(f_sf)) / KENNICUTT
    ha = l_ha / (4 * np.pi * dl**2)  # intrinsic H-alpha flux reaching us
    ebv = t["a_halpha"] / CARDELLI_K[6564.6]
    hb = ha / 2.86
    logm = np.nan_to_num(t["logm"], nan=10.0)
    # star formation puts the galaxy on the BPT star-forming locus: [N II]/H-alpha 0.15-0.5 rising
    # with mass (metallicity), [O III]/H-beta 0.25 dex below Kauffmann et al. (2003), so falling with it
    n2_sf = np.log10(0.15 + 0.35 * np.clip((logm - 9.0) / 2.5, 0, 1))
    n2_ha, o3_hb = 10**n2_sf, 10 ** (kauffmann03(n2_sf) - 0.25)
    intrinsic = {
        6564.6: ha,
        4862.7: hb,
        4341.7: 0.47 * hb,
        6585.3: n2_ha * ha,
        6549.9: n2_ha * ha / 3.0,
        5008.2: o3_hb * hb,
        4960.3: o3_hb * hb / 2.98,
        3727.1: 2.0 * hb,
        6718.3: 0.15 * ha,
        6732.7: 0.11 * ha,
    }
    # old stars ionise LINER-like emission (Hα, strong [N II] and [O III]), set by the continuum
    # (an equivalent width growing with the old population), not by the star formation
    at = np.clip(np.searchsorted(wl, 6585.3 * (1 + z)), 0, wl.size - 1)
    liner_nii = LINER_EW * t["q_old"] ** 4 * (1 + z) * model[np.arange(len(z)), at]
    for c, share in LINER_LINES.items():
        intrinsic[c] = intrinsic[c] + share * liner_nii
    rest_c = np.array(list(intrinsic))
    obs = np.stack([intrinsic[c] * 10 ** (-0.4 * CARDELLI_K[c] * ebv) for c in rest_c], 1)
    centres = rest_c[None, :] * (1 + z[:, None])
    sigma_v = 50.0 + 80.0 * np.clip((logm - 9.0) / 2.7, 0, 1)
    sigma_a = np.sqrt((centres * sigma_v[:, None] / C_KMS) ** 2 + 0.8**2)
    return model + _lines(_edges(wl), centres, obs, sigma_a)


def quasar_spectra(rng: np.random.Generator, t: dict[str, np.ndarray], wl: np.ndarray) -> np.ndarray:
    """Power law f_nu ~ nu^-0.44 with broad (FWHM 3000-5000 km/s) and a few narrow lines."""
    k = len(t["z"])
    z = t["z"]
    r_flux = fnu_to_flambda(10 ** (-0.4 * (t["mag"][:, 2] - 22.5)), BAND_MIDPOINTS["r"])
    cont = _normalise(np.tile((wl / 6166.0) ** (-1.56), (k, 1)), wl, r_flux)
    broad = {
        1215.7: 80.0,
        1549.1: 30.0,
        1908.7: 20.0,
        2798.8: 35.0,
        4341.7: 15.0,
        4862.7: 50.0,
        6564.6: 200.0,
    }
    narrow = {5008.2: 15.0, 3727.1: 3.0}
    centres, fluxes, sig = [], [], []
    fwhm = rng.uniform(3000, 5000, k)
    for lines, width in ((broad, fwhm), (narrow, np.full(k, 300.0))):
        for c, ew in lines.items():
            obs_c = c * (1 + z)
            cont_at = r_flux * (obs_c / 6166.0) ** (-1.56)
            centres.append(obs_c)
            fluxes.append(ew * (1 + z) * cont_at * rng.uniform(0.6, 1.4, k))
            sig.append(obs_c * width / 2.3548 / C_KMS)
    centres, fluxes, sig = (np.stack(a, 1) for a in (centres, fluxes, sig))
    return cont + _lines(_edges(wl), centres, fluxes, sig)


def star_spectra(t: dict[str, np.ndarray], wl: np.ndarray) -> np.ndarray:
    """Black bodies at T_eff with Balmer (hot) and metal (cool) absorption."""
    teff = t["teff"][:, None]
    lam_cm = wl[None, :] * 1e-8
    bb = 1.0 / (lam_cm**5 * np.expm1(1.4388 / (lam_cm * teff)))
    hot = np.clip((teff - 5000.0) / 4000.0, 0, 1)
    absorb = np.ones_like(bb)
    for c, w, depth in ((6564.6, 10.0, 0.5), (4862.7, 10.0, 0.5), (4341.7, 9.0, 0.45), (4102.9, 9.0, 0.4)):
        absorb -= hot * depth * np.exp(-0.5 * ((wl - c) / w) ** 2)
    for c, w, depth in ABSORPTION[:5]:
        absorb -= (1 - hot) * depth * np.exp(-0.5 * ((wl - c) / w) ** 2)
    r_flux = fnu_to_flambda(10 ** (-0.4 * (t["mag"][:, 2] - 22.5)) * 0.8, BAND_MIDPOINTS["r"])
    return _normalise(bb * np.clip(absorb, 0.05, None), wl, r_flux)


def observe(rng: np.random.Generator, model: np.ndarray, wl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One SDSS-like observation: per-pixel errors, Gaussian noise, occasional masked pixels (NaN)."""
    k, npix = model.shape
    sigma0 = rng.uniform(0.45, 0.9, k)[:, None]
    shape = 1.0 + 2.0 * np.exp(-(wl - wl[0]) / 250.0) + 0.6 * np.exp(-(wl[-1] - wl) / 400.0)
    for c in SKY_LINES:
        shape = shape + 2.5 * np.exp(-0.5 * ((wl - c) / 3.0) ** 2)
    var = (sigma0 * shape[None, :]) ** 2 + 0.03 * np.clip(model / UNIT, 0, None)
    err = np.sqrt(var) * UNIT
    flux = model + rng.normal(0, 1, model.shape) * err
    gaps = rng.random(k) < 0.15
    for i in np.flatnonzero(gaps):
        for _ in range(rng.integers(1, 4)):
            a = rng.integers(0, npix - 40)
            b = a + rng.integers(3, 40)
            flux[i, a:b] = np.nan
            err[i, a:b] = np.nan
    return flux, err


def render_spectra(
    rng: np.random.Generator,
    t: dict[str, np.ndarray],
    f_star: np.ndarray,
    f_sf: np.ndarray,
    n_obs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed (combined) spectra of every target on the zoom-0 grid: flux, error (k, 4620)."""
    wl = wavelength_grid(0)
    k = len(t["z"])
    model = np.zeros((k, wl.size))
    for cls, fn in (("GALAXY", None), ("QSO", quasar_spectra), ("STAR", star_spectra)):
        sel = t["class"] == cls
        if not sel.any():
            continue
        sub = {key: v[sel] for key, v in t.items()}
        if cls == "GALAXY":
            model[sel] = galaxy_spectra(sub, f_star[sel], f_sf[sel], wl)
        elif cls == "QSO":
            model[sel] = fn(rng, sub, wl)
        else:
            model[sel] = fn(sub, wl)
    flux, err = observe(rng, model, wl)
    for i in np.flatnonzero(n_obs > 1):
        obs = [observe(rng, model[i : i + 1], wl) for _ in range(int(n_obs[i]) - 1)]
        flux[i], err[i] = combine_ivw([flux[i], *[o[0][0] for o in obs]], [err[i], *[o[1][0] for o in obs]])
    return flux, err
