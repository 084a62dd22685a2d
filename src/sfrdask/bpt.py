"""The BPT diagram's dividing lines (Baldwin, Phillips & Terlevich 1981), shared by the synthetic
survey (which puts star-forming galaxies below them) and the physics baseline (which classifies).

x = log [N II] 6584 / H-alpha, y = log [O III] 5007 / H-beta:

>>> round(float(kauffmann03(-0.5)), 3), round(float(kewley01(-0.5)), 3)
(0.191, 0.561)
>>> bool(kauffmann03(0.1) == -float("inf"))  # right of the asymptote every galaxy is above the line
True
>>> bpt_region([-0.5, -0.3, 0.0], [0.0, 0.3, 1.0]).tolist()
['SF', 'COMPOSITE', 'AGN']
>>> round(float(bolton12(-0.5)), 3)  # the SDSS pipeline's laxer line, far above Kauffmann's
0.82
"""

from __future__ import annotations

import numpy as np

# the physics baseline's classes of a spectrum; only SFR_CLASSES get an H-alpha SFR ("NO_HALPHA":
# the SFR of an upper limit), AGN_CLASSES have lines lit by a nucleus
CLASSES = ("SF", "SF_LOW_SN", "NO_HALPHA", "COMPOSITE", "AGN", "AGN_LOW_SN", "BROAD_LINE", "NO_COVERAGE")
SFR_CLASSES = CLASSES[:3]
AGN_CLASSES = ("COMPOSITE", "AGN", "AGN_LOW_SN")


def kauffmann03(x: np.ndarray | float) -> np.ndarray:
    """Kauffmann et al. (2003): the upper boundary of pure star formation, y = 0.61 / (x - 0.05) + 1.3."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < 0.05, 0.61 / (x - 0.05) + 1.3, -np.inf)


def kewley01(x: np.ndarray | float) -> np.ndarray:
    """Kewley et al. (2001): the maximum starburst line, y = 0.61 / (x - 0.47) + 1.19."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < 0.47, 0.61 / (x - 0.47) + 1.19, -np.inf)


def bolton12(x: np.ndarray | float) -> np.ndarray:
    """The SDSS pipeline's line for its STARFORMING / AGN SUBCLASS (Bolton et al. 2012; the DR9
    spectroscopic catalogues page): y = 0.7 - 1.2 (x + 0.4)."""
    return 0.7 - 1.2 * (np.asarray(x, dtype=float) + 0.4)


def bpt_region(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """SF below Kauffmann et al. (2003), COMPOSITE up to Kewley et al. (2001), AGN above (and where
    x or y is not a number)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return np.where(y < kauffmann03(x), "SF", np.where(y < kewley01(x), "COMPOSITE", "AGN"))
