"""sfrdask: predict galaxy star formation rates from SDSS images and spectra, on Dask.

>>> import sfrdask
>>> cube = sfrdask.make_survey("survey", objects=500, seed=1)       # doctest: +SKIP
>>> ds = sfrdask.open_hisscube(cube, image_zoom=1, spectrum_zoom=2)  # doctest: +SKIP
>>> ds = sfrdask.join_labels(ds, sfrdask.read_catalog_dir("survey"))  # doctest: +SKIP
"""

__version__ = "0.1.0"

from sfrdask import config
from sfrdask.cluster import cluster
from sfrdask.io.catalog import join_labels, label_coverage, read_catalog_dir, read_mpajhu
from sfrdask.io.hisscube import open_hisscube
from sfrdask.io.store import open_store, write_store
from sfrdask.synth import make_survey

__all__ = [
    "__version__",
    "cluster",
    "config",
    "join_labels",
    "label_coverage",
    "make_survey",
    "open_hisscube",
    "open_store",
    "read_catalog_dir",
    "read_mpajhu",
    "write_store",
]
