"""The synthetic population: classes, masses, redshifts, SFRs, sizes, colours and fibre fractions.

The relations follow docs/synthetic-survey.md (Renzini & Peng 2015 main sequence, Shen et al. 2003
sizes, Bell et al. 2003 M/L, Kennicutt 1998). Everything is vectorised per chunk of targets and
drawn from a generator seeded by (seed, chunk), so a chunk is the same whichever worker makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammainc

from sfrdask import config
from sfrdask.cosmology import distance_modulus, kpc_per_arcsec

R_LIMIT = 17.77  # SDSS main galaxy sample
FIBRE_RADIUS = {"sdss": 1.5, "boss": 1.0}  # arcsec
KENNICUTT = 7.9e-42  # Msun/yr per erg/s of H-alpha
CLASSES = ("GALAXY", "QSO", "STAR")


def _synth(key: str) -> Any:
    return config.get(f"synth.{key}")


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the synthetic survey; each default is ``sfrdask.synth.*`` in dask.config
    (``sfrdask.yaml``), read when the parameters are made."""

    galaxy: float = field(default_factory=lambda: float(_synth("class-fractions")["galaxy"]))
    star: float = field(default_factory=lambda: float(_synth("class-fractions")["star"]))
    quasar: float = field(default_factory=lambda: float(_synth("class-fractions")["quasar"]))
    flag0_fraction: float = field(default_factory=lambda: float(_synth("flag0-fraction")))
    flag0_galaxy_to_quasar: float = field(default_factory=lambda: float(_synth("flag0-galaxy-to-quasar")))
    neighbour_fraction: float = field(default_factory=lambda: float(_synth("neighbour-fraction")))
    repeat_fraction: float = field(default_factory=lambda: float(_synth("repeat-fraction")))

    def flag0_probability(self) -> dict[str, float]:
        """P(FLAG == 0) per class, so that the survey-wide fraction and galaxy:quasar ratio hold."""
        r = self.flag0_galaxy_to_quasar
        pg = self.flag0_fraction * r / (r + 1) / max(self.galaxy, 1e-9)
        pq = self.flag0_fraction / (r + 1) / max(self.quasar, 1e-9)
        return {"GALAXY": min(pg, 1.0), "QSO": min(pq, 1.0), "STAR": 0.0}


def main_sequence(logm: np.ndarray) -> np.ndarray:
    """log SFR of the star-forming main sequence (Renzini & Peng 2015)."""
    return 0.76 * logm - 7.64


def quenched_probability(logm: np.ndarray) -> np.ndarray:
    """About 20% at log M* = 10 and 70% at 11."""
    return 1.0 / (1.0 + np.exp(-(logm - 10.45) / 0.42))


def sersic_b(n: np.ndarray) -> np.ndarray:
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def sersic_enclosed(radius: np.ndarray, re: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Fraction of a circular Sersic profile's light inside ``radius``."""
    return gammainc(2.0 * n, sersic_b(n) * (np.maximum(radius, 0) / re) ** (1.0 / n))


def fibre_fractions(re_arcsec, n, ba, q_old, seeing_fwhm, fibre_radius):
    """Shares of the stellar light and of the star formation that fall in the fibre.

    Stars follow the Sersic profile; star formation an exponential disc whose scale grows with the
    old-light fraction (inside-out quenching). Seeing is added in quadrature to second moments.
    """
    sigma = seeing_fwhm / 2.3548
    re_eff = np.sqrt(re_arcsec**2 * ba + 1.2 * sigma**2)
    f_star = sersic_enclosed(fibre_radius, re_eff, n)
    h = re_arcsec * (1.0 + 0.6 * q_old) / 1.678 * np.sqrt(ba)
    h_eff = np.sqrt(h**2 + sigma**2 / 3.0)
    x = fibre_radius / h_eff
    f_sf = 1.0 - (1.0 + x) * np.exp(-x)
    return f_star, f_sf


def _mass_function(rng: np.random.Generator, n: int) -> np.ndarray:
    """log M* from a Schechter function (log M* = 10.9, alpha = -1.3) between 9 and 11.9."""
    grid = np.linspace(9.0, 11.9, 600)
    x = 10 ** (grid - 10.9)
    pdf = x ** (-1.3 + 1) * np.exp(-x)
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


def _galaxy_candidates(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    logm = _mass_function(rng, n)
    z = 0.005 + (0.35 - 0.005) * rng.random(n) ** (1 / 2.8)  # volume-weighted, with some evolution
    quenched = rng.random(n) < quenched_probability(logm)
    ms = main_sequence(logm)
    logsfr = np.where(
        quenched, ms - rng.uniform(1.0, 1.5, n) + rng.normal(0, 0.5, n), ms + rng.normal(0, 0.3, n)
    )
    delta = logsfr - ms
    q = 1.0 / (1.0 + np.exp((delta + 0.7) / 0.3))  # old-light fraction: ~0.1 on the MS, ~0.85 quenched
    bulge = np.clip((logm - 9.8) / 2.0, 0.0, 0.6)  # massive star-forming discs carry old bulges
    q = q + (1 - q) * bulge * 0.7
    gr_rest = 0.41 + 0.38 * q + rng.normal(0, 0.04, n)
    log_ml = -0.306 + 1.097 * gr_rest  # Bell et al. 2003, r band
    m_r_abs = 4.65 - 2.5 * (logm - log_ml)
    r = m_r_abs + distance_modulus(z) + z * (0.4 + 0.9 * q)  # with a simple k-correction
    g = r + gr_rest + z * (0.6 + 1.6 * q)
    u = g + 1.05 + 0.85 * q + z * (0.5 + 2.5 * q) + rng.normal(0, 0.08, n)
    i = r - (0.26 + 0.12 * q + 0.7 * z + rng.normal(0, 0.03, n))
    zz = i - (0.17 + 0.12 * q + 0.4 * z + rng.normal(0, 0.04, n))
    return dict(logm=logm, z=z, quenched=quenched, logsfr=logsfr, q=q, mag=np.stack([u, g, r, i, zz], 1))


def _galaxies(rng: np.random.Generator, n: int, limit: float = R_LIMIT) -> dict[str, np.ndarray]:
    """Magnitude-limited galaxies (r < 17.77) by rejection from the volume-weighted population.

    Targets fainter than r = 16 are kept with probability 10^(-0.33 (r - 16)): the spectroscopic
    sample then has the number counts of the DR14 reference table (median r 16.7), which is
    brighter than a pure r < 17.77 cut of Euclidean counts would give (median 17.3).
    """
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    while have < n:
        c = _galaxy_candidates(rng, max(8 * (n - have), 64))
        r = c["mag"][:, 2]
        p_keep = np.minimum(1.0, 10 ** (-0.33 * (r - 16.0)))
        keep = (r < limit) & (r > 13.0) & (rng.random(r.size) < p_keep)
        parts.append({k: v[keep] for k, v in c.items()})
        have += int(keep.sum())
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def galaxy_morphology(rng: np.random.Generator, logm, q, z):
    """Sersic index, effective radius (arcsec), axis ratio and position angle."""
    n = len(logm)
    late = 0.60 + 0.22 * (logm - 10.5)
    early = 0.40 + 0.55 * (logm - 10.5)
    re_kpc = 10 ** ((1 - q) * late + q * early + rng.normal(0, 0.15, n))
    re_arcsec = np.clip(re_kpc / kpc_per_arcsec(z), 0.3, 20.0)
    sersic = np.clip(1.0 + 3.0 * q + rng.normal(0, 0.3, n), 0.6, 5.5)
    ba = (1 - q) * rng.uniform(0.2, 1.0, n) + q * rng.uniform(0.55, 1.0, n)
    pa = rng.uniform(0, 180.0, n)
    return sersic, re_arcsec, ba, pa


def draw_targets(rng: np.random.Generator, n: int, p: SynthParams) -> dict[str, np.ndarray]:
    """Every property of ``n`` targets that images, spectra and catalogues are made from."""
    frac = np.array([p.galaxy, p.quasar, p.star], dtype=float)
    cls_idx = rng.choice(3, size=n, p=frac / frac.sum())
    cls = np.array(CLASSES)[cls_idx]
    out = {
        "class": cls,
        "z": np.zeros(n),
        "logm": np.full(n, np.nan),
        "logsfr": np.full(n, np.nan),
        "q_old": np.zeros(n),
        "mag": np.zeros((n, 5)),
        "sersic": np.ones(n),
        "re_arcsec": np.zeros(n),
        "ba": np.ones(n),
        "pa": np.zeros(n),
        "point": np.zeros(n, bool),
        "a_halpha": np.zeros(n),
        "teff": np.zeros(n),
    }
    g = cls == "GALAXY"
    if g.any():
        gal = _galaxies(rng, int(g.sum()))
        for k in ("z", "logm", "logsfr", "mag"):
            out[k][g] = gal[k]
        out["q_old"][g] = gal["q"]
        sersic, re, ba, pa = galaxy_morphology(rng, gal["logm"], gal["q"], gal["z"])
        out["sersic"][g], out["re_arcsec"][g], out["ba"][g], out["pa"][g] = sersic, re, ba, pa
        a = 0.25 + 0.75 * (gal["logm"] - 9.5) * (1 - 0.5 * gal["q"]) + rng.normal(0, 0.25, g.sum())
        out["a_halpha"][g] = np.clip(a, 0.0, 2.5)
    qs = cls == "QSO"
    if qs.any():
        k = int(qs.sum())
        zq = np.clip(rng.normal(1.25, 0.62, k), 0.1, 3.0)
        r = np.clip(rng.normal(18.66, 0.6, k), 16.3, 19.9)
        gr = 0.15 + rng.normal(0, 0.12, k) + 0.15 * (zq > 2.0)
        ug = 0.22 + rng.normal(0, 0.15, k) + 0.9 * np.clip(zq - 2.2, 0, None)
        ri = 0.13 + rng.normal(0, 0.08, k)
        iz = 0.06 + rng.normal(0, 0.08, k)
        out["z"][qs] = zq
        out["mag"][qs] = np.stack([r + gr + ug, r + gr, r, r - ri, r - ri - iz], 1)
        out["logm"][qs] = rng.normal(10.9, 0.35, k)  # host galaxy
        out["logsfr"][qs] = main_sequence(out["logm"][qs]) + rng.normal(-0.2, 0.45, k)
        out["point"][qs] = True
        out["a_halpha"][qs] = np.clip(rng.normal(0.8, 0.4, k), 0, 2.5)
    st = cls == "STAR"
    if st.any():
        k = int(st.sum())
        r = np.clip(rng.normal(16.8, 1.0, k), 13.5, 20.5)
        gr = np.clip(0.42 + rng.normal(0, 0.25, k), -0.35, 1.6)
        ug = 0.62 + 1.2 * gr + rng.normal(0, 0.1, k)
        ri = 0.35 * gr + 0.01 + rng.normal(0, 0.04, k)
        iz = 0.15 * gr + rng.normal(0, 0.04, k)
        out["z"][st] = rng.normal(0, 1e-4, k)
        out["mag"][st] = np.stack([r + gr + ug, r + gr, r, r - ri, r - ri - iz], 1)
        bv = 0.98 * gr + 0.22
        out["teff"][st] = 4600.0 * (1 / (0.92 * bv + 1.7) + 1 / (0.92 * bv + 0.62))
        out["point"][st] = True
    out["seeing_r"] = np.clip(rng.normal(1.4, 0.2, n), 0.9, 2.2)  # arcsec FWHM in r
    return out


def _pdf_summary(avg, half, median, mode, flag, missing) -> dict[str, np.ndarray]:
    """The columns MPA-JHU gives for one quantity's PDF; rows in ``missing`` hold -99."""
    cols = {
        "AVG": avg,
        "MEDIAN": median,
        "MODE": mode,
        "P2P5": avg - 2 * half,
        "P16": avg - half,
        "P84": avg + half,
        "P97P5": avg + 2 * half,
        "ENTROPY": np.log(2 * half) + 2.0,
    }
    out = {k: np.where(missing, -99.0, v).astype(np.float32) for k, v in cols.items()}
    out["FLAG"] = flag
    return out


def draw_labels(rng: np.random.Generator, t: dict[str, np.ndarray], p: SynthParams) -> dict[str, np.ndarray]:
    """MPA-JHU-like PDF summaries of log SFR and log M*: noisy around the truth, wider for passive
    galaxies and AGN; FLAG == 0 drawn per class so the survey-wide fraction holds."""
    n = len(t["z"])
    passive = (t["q_old"] > 0.5) | (t["class"] == "QSO")
    half = np.where(passive, rng.uniform(0.25, 0.5, n), rng.uniform(0.1, 0.2, n))  # (P84 - P16) / 2
    avg = t["logsfr"] + rng.normal(0, 1, n) * half
    p_flag0 = np.array([p.flag0_probability()[c] for c in t["class"]])
    flag = np.where(rng.random(n) < p_flag0, 0, rng.choice([1, 2, 4], size=n))
    missing = (flag != 0) & (rng.random(n) < 0.5)  # flagged rows that hold -99 instead of an estimate
    sfr = _pdf_summary(
        avg,
        half,
        avg + 0.05 * half * rng.normal(0, 1, n),
        avg + 0.1 * half * rng.normal(0, 1, n),
        flag,
        missing,
    )
    mhalf = rng.uniform(0.05, 0.12, n)
    mavg = t["logm"] + rng.normal(0, 1, n) * mhalf
    lgm = _pdf_summary(mavg, mhalf, mavg, mavg, flag, missing)
    return {"sfr": sfr, "lgm": lgm, "label_half_width": half}
