"""Flat LambdaCDM (H0 = 70, Om = 0.3) distances, tabulated once and interpolated (fast in loops)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.cosmology import FlatLambdaCDM

COSMO = FlatLambdaCDM(H0=70.0, Om0=0.3)
_Z = np.concatenate([np.linspace(1e-4, 0.5, 2000), np.linspace(0.5, 6.0, 2000)[1:]])


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    dl_cm = COSMO.luminosity_distance(_Z).to("cm").value
    kpc_per_arcsec = COSMO.kpc_proper_per_arcmin(_Z).value / 60.0
    return dl_cm, kpc_per_arcsec


def luminosity_distance_cm(z: np.ndarray) -> np.ndarray:
    return np.interp(z, _Z, _tables()[0])


def kpc_per_arcsec(z: np.ndarray) -> np.ndarray:
    return np.interp(z, _Z, _tables()[1])


def distance_modulus(z: np.ndarray) -> np.ndarray:
    return 5.0 * np.log10(luminosity_distance_cm(z) / 3.0857e19)  # 10 pc in cm
