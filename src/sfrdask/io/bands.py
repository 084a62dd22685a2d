"""A guard against permuted bands: do the five image planes look like u, g, r, i, z?

The band of each stored plane comes from the file's metadata (the FILTER of the frame behind each
plane; docs/formats.md). If a writer put the pixels into the wrong planes, nothing in the metadata
says so, and a model would learn from mislabelled bands. The pixels themselves can: SDSS objects
have characteristic colours. From a sample of objects, this module measures fibre-aperture colours
u-g, g-r, r-i, i-z (AB magnitudes) and compares them, for each of the 120 ways the planes could be
assigned to bands, with where SDSS galaxies, quasars and stars lie. When another assignment fits
the colours far better than the one the metadata gives, the bands are probably permuted, and
:func:`check_bands` names the most likely permutation.

The loci are the median and 16th-84th percentile half-width of each colour per class in the SDSS
DR14 sample ``../shared/data/sdss/catalog/skyserver_dr14_photometry_10k.csv`` (4,998 galaxies, 850
quasars, 4,152 stars; model magnitudes), checked against that file by the test suite.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sfrdask.io.levels import BANDS, nmgy_to_stored

SAMPLE = 1000  # objects whose colours are measured (the first ones of the file)

COLOURS = ("u-g", "g-r", "r-i", "i-z")
# median colour and half the 16-84 percentile width, per class (SDSS DR14, model magnitudes)
LOCI = {
    "GALAXY": ((1.405, 0.724, 0.398, 0.277), (0.39, 0.23, 0.075, 0.095)),
    "QSO": ((0.213, 0.146, 0.128, 0.063), (0.17, 0.165, 0.15, 0.14)),
    "STAR": ((1.175, 0.424, 0.160, 0.063), (0.30, 0.185, 0.085, 0.06)),
}
APERTURE_ARCSEC = 3.0  # the SDSS-I/II fibre diameter
PIXEL_ARCSEC = 0.396  # at zoom 0
# the guard fires when another assignment beats the stored one by both of these (distances are
# medians over objects of squared distances in locus widths; 4 colours: ~4 for a typical object)
BETTER_BY = 1.5  # times
BETTER_BY_AT_LEAST = 3.0  # in squared locus widths


@dataclass(frozen=True)
class BandCheck:
    """What the colours say about the stored band order."""

    objects: int  # objects whose five aperture fluxes were positive
    colours: dict[str, float]  # median u-g, g-r, r-i, i-z as stored
    score: float  # median distance of the objects from the nearest SDSS locus, as stored
    best: str  # for u, g, r, i, z in turn, the plane (named as read) that fits that band best:
    # "ugriz" is the order as read; "zgriu" says u and z are swapped
    best_score: float

    @property
    def permuted(self) -> bool:
        """True when another assignment of planes to bands fits the colours far better."""
        gain = self.score - self.best_score
        far_better = self.score > BETTER_BY * self.best_score and gain > BETTER_BY_AT_LEAST
        return self.best != "".join(BANDS) and far_better

    def message(self, source: str) -> str:
        cols = ", ".join(f"{k} {v:+.2f}" for k, v in self.colours.items())
        if not self.permuted:
            return f"{source}: band colours look like SDSS objects ({cols}; {self.objects} objects)"
        return (
            f"{source}: the image planes' colours do not look like u, g, r, i, z ({cols}; median "
            f"distance {self.score:.1f} from the SDSS loci) but fit far better ({self.best_score:.1f}) "
            f"when u, g, r, i, z are taken from the planes read as {', '.join(self.best)}: the pixels "
            "are probably in other planes than the frame headers say; check the program that wrote "
            "this file"
        )


def aperture_fluxes(images: np.ndarray, zoom: int) -> np.ndarray:
    """Fluxes ``(n, planes)`` in a 3" aperture at the cutout's centre, from images
    ``(n, planes, s, s)`` in the HiSS-Cube unit (per pixel)."""
    s = images.shape[-1]
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    radius = APERTURE_ARCSEC / 2 / (PIXEL_ARCSEC * 2**zoom)
    mask = (np.hypot(yy, xx) <= max(radius, 0.75)).astype(np.float64)
    return np.nansum(images.astype(np.float64) * mask, axis=(-2, -1))


def ab_magnitudes(fluxes: np.ndarray, bands: str = "ugriz") -> np.ndarray:
    """AB magnitudes of fluxes in the HiSS-Cube unit, column k taken as band ``bands[k]`` (the unit
    depends on the band's mid-wavelength); NaN where the flux is not positive."""
    nmgy = fluxes / np.array([nmgy_to_stored(b) for b in bands])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nmgy > 0, 22.5 - 2.5 * np.log10(nmgy), np.nan)


def _score(colours: np.ndarray) -> float:
    """Median over objects of the squared distance, in locus widths, to the nearest class locus."""
    d = [(((colours - np.array(m)) / np.array(w)) ** 2).sum(axis=1) for m, w in LOCI.values()]
    return float(np.median(np.min(d, axis=0)))


def check_bands(images: np.ndarray, zoom: int = 0) -> BandCheck:
    """Compare the colours of ``images`` ``(n, 5, s, s)`` (planes read as u, g, r, i, z) with the
    SDSS loci under every assignment of planes to bands; see :class:`BandCheck`."""
    flux = aperture_fluxes(images, zoom)
    flux = flux[(flux > 0).all(axis=1)]
    if len(flux) < 20:
        return BandCheck(len(flux), {}, float("nan"), "".join(BANDS), float("nan"))
    scores = {}
    for perm in itertools.permutations(range(5)):
        mags = ab_magnitudes(flux[:, perm])  # band k of this assignment is stored plane perm[k]
        scores["".join(BANDS[p] for p in perm)] = _score(mags[:, :-1] - mags[:, 1:])
    mags = ab_magnitudes(flux)
    stored = "".join(BANDS)
    best = min(scores, key=scores.get)
    col = np.median(mags[:, :-1] - mags[:, 1:], axis=0)
    return BandCheck(
        objects=len(flux),
        colours={k: round(float(v), 3) for k, v in zip(COLOURS, col, strict=True)},
        score=round(scores[stored], 2),
        best=best,
        best_score=round(scores[best], 2),
    )


class PermutedBandsWarning(UserWarning):
    """The image planes' colours say the bands are not where the file's metadata puts them."""


def check_dataset(ds: Any, source: str, sample: int = SAMPLE) -> dict[str, Any]:
    """Run :func:`check_bands` on the first ``sample`` objects of a dataset from
    :func:`sfrdask.io.hisscube.open_hisscube` (or a store), warn (PermutedBandsWarning) if the bands
    look permuted, and return the finding as a plain dict (for ``sfrdask info`` and store attributes)."""
    zoom = int(ds.attrs.get("image_zoom", 0) or 0)
    found = check_bands(np.asarray(ds.image[:sample].values), zoom)
    if found.permuted:
        warnings.warn(found.message(source), PermutedBandsWarning, stacklevel=2)
    return {**asdict(found), "zoom": zoom, "permuted": found.permuted, "message": found.message(source)}
