"""What the redshift and the class give a model beside the pixels.

SFR is a luminosity: the same fluxes mean a 4x larger SFR at twice the distance. Every learned model
therefore sees, when ``sfrdask.train.context`` asks for them, a few numbers per object:

``redshift``  log10 of the luminosity distance in Mpc (flat LambdaCDM, H0 = 70, Om = 0.3, as
              MPA-JHU) and ``has_z`` (1 where the redshift is usable, else 0);
``class``     ``is_qso`` (1 for the spectroscopic class QSO, else 0).

The rule for the redshift: ``Z`` from the cube's spectrum metadata, else from MPA-JHU's gal_info
(ingest fills it; real HiSS-Cube headers hold none). A redshift is usable when it is finite and
above :data:`Z_MIN`. Where it is not, ``log_dl`` is NaN, which the normaliser turns into the
training mean, ``has_z`` is 0, and the predicted catalogue flags the object ``Z_OUTSIDE``.

:func:`rest_frame` resamples spectra onto a rest-frame grid (``sfrdask.train.rest-frame``), so that
a line falls on the same samples at every redshift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sfrdask.cosmology import luminosity_distance_cm
from sfrdask.errors import SfrdaskError

PARTS = {"redshift": ("log_dl", "has_z"), "class": ("is_qso",)}
Z_MIN = 1e-3  # below this (stars, blank or negative pipeline redshifts) the redshift is not used
REST_PIVOT = 0.1  # the rest-frame grid is the observed grid divided by (1 + REST_PIVOT)


def check_parts(parts: Sequence[str]) -> tuple[str, ...]:
    """The context parts asked for, validated and in a fixed order."""
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise SfrdaskError(f"unknown context {bad}; choose from {', '.join(PARTS)} (or none)")
    return tuple(p for p in PARTS if p in parts)


def columns(parts: Sequence[str]) -> tuple[str, ...]:
    """Names of the context columns, in order."""
    return tuple(c for p in check_parts(parts) for c in PARTS[p])


def usable_redshift(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    return np.isfinite(z) & (z > Z_MIN)


def context_features(z: np.ndarray, classes: np.ndarray | None, parts: Sequence[str]) -> np.ndarray:
    """The ``(objects, len(columns(parts)))`` context matrix (float64; NaN where unknown)."""
    z = np.asarray(z, np.float64)
    cols = []
    for p in check_parts(parts):
        if p == "redshift":
            ok = usable_redshift(z)
            dl = np.full(z.shape, np.nan)
            dl[ok] = np.log10(luminosity_distance_cm(z[ok]) / 3.0857e24)  # cm -> Mpc
            cols += [dl, ok.astype(np.float64)]
        else:
            if classes is None:  # no class known: none counts as a quasar
                cols.append(np.zeros(z.shape))
            else:
                cls = [str(c).strip().upper() == "QSO" for c in np.asarray(classes).ravel()]
                cols.append(np.array(cls, np.float64).reshape(z.shape))
    return np.stack(cols, axis=1) if cols else np.zeros((z.size, 0))


def rest_frame(spectra: np.ndarray, z: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Spectra ``(k, L)`` sampled at observed wavelengths ``grid`` resampled (linear interpolation)
    onto ``grid / (1 + REST_PIVOT)`` in the rest frame; samples outside the observed range, and
    whole spectra without a usable redshift, become NaN (the normaliser's training mean)."""
    spectra = np.asarray(spectra, np.float64)
    rest = grid / (1 + REST_PIVOT)
    out = np.full(spectra.shape, np.nan)
    z = np.asarray(z, np.float64)
    for i in np.flatnonzero(usable_redshift(z)):
        obs = rest * (1 + z[i])  # where each rest-frame sample was observed
        out[i] = np.interp(obs, grid, spectra[i], left=np.nan, right=np.nan)
    return out
