"""sfrdask: predict galaxy star formation rates from SDSS images and spectra, on Dask.

>>> import sfrdask
>>> cube = sfrdask.make_survey("survey", objects=500, seed=1)       # doctest: +SKIP
>>> ds = sfrdask.open_hisscube(cube, image_zoom=1, spectrum_zoom=2)  # doctest: +SKIP
>>> ds = sfrdask.join_labels(ds, sfrdask.read_catalog_dir("survey"))  # doctest: +SKIP
>>> r = sfrdask.train_model("store.zarr", "early-fusion", image_zoom=2, spectrum_zoom=2)  # doctest: +SKIP
"""

__version__ = "0.2.0"

from sfrdask import config
from sfrdask.cluster import cluster
from sfrdask.io.catalog import join_labels, label_coverage, read_catalog_dir, read_mpajhu
from sfrdask.io.hisscube import open_hisscube
from sfrdask.io.store import open_store, write_store
from sfrdask.synth import make_survey

# torch is imported only when training is asked for: `import sfrdask` stays quick
_LAZY = {
    "train_model": ("sfrdask.train.run", "train"),
    "evaluate_model": ("sfrdask.train.run", "evaluate"),
    "list_models": ("sfrdask.models", "list_models"),
    "predict": ("sfrdask.stages.predict", "predict"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sfrdask' has no attribute {name!r}")


__all__ = [
    "__version__",
    "cluster",
    "config",
    "evaluate_model",
    "join_labels",
    "label_coverage",
    "list_models",
    "make_survey",
    "open_hisscube",
    "open_store",
    "predict",
    "read_catalog_dir",
    "read_mpajhu",
    "train_model",
    "write_store",
]
