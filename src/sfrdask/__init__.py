"""sfrdask: predict galaxy star formation rates from SDSS images and spectra, on Dask.

One function per stage (:mod:`sfrdask.api`), each returning a result that names what it wrote::

    import sfrdask

    if __name__ == "__main__":  # worker processes re-import the script that starts a cluster
        with sfrdask.cluster("local") as client:
            s = sfrdask.synth("survey", objects=2000, seed=1, client=client)
            store = sfrdask.ingest(s.cube, "store.zarr", catalog="survey", client=client).store
            sfrdask.preprocess(store, "plots", client=client)
            r = sfrdask.train(store, ["gbt-both"], image_zoom=2, spectrum_zoom=2, out="runs")
            cat = sfrdask.predict([r.runs[0]["run_dir"]], "sfr.fits", cube=s.cube, catalog="survey",
                                  client=client)

Readers for the data stay available on their own: :func:`open_hisscube`, :func:`open_store`,
:func:`read_catalog_dir`, :func:`join_labels`.
"""

import importlib

from sfrdask import api as _api
from sfrdask import config
from sfrdask._version import __version__

# Everything else is imported when first used, so `import sfrdask` and `sfrdask --help` stay quick
# (and `sfrdask synth` never loads torch). No name here may be a submodule's (src/sfrdask/NAME.py or
# src/sfrdask/NAME/): importing the submodule would replace the attribute.
_LAZY = {
    "cluster": ("sfrdask.clusters", "cluster"),
    "open_cluster": ("sfrdask.clusters", "open_cluster"),
    "join_labels": ("sfrdask.io.catalog", "join_labels"),
    "label_coverage": ("sfrdask.io.catalog", "label_coverage"),
    "read_catalog_dir": ("sfrdask.io.catalog", "read_catalog_dir"),
    "read_mpajhu": ("sfrdask.io.catalog", "read_mpajhu"),
    "open_hisscube": ("sfrdask.io.hisscube", "open_hisscube"),
    "open_store": ("sfrdask.io.store", "open_store"),
    "write_store": ("sfrdask.io.store", "write_store"),
    "make_survey": ("sfrdask.synthetic", "make_survey"),
    "list_models": ("sfrdask.models", "list_models"),
}


# one function per stage (sfrdask.api): cheap to import, the stages' modules load when called
_STAGE_FUNCTIONS = _api.top_level()


def __getattr__(name: str):
    if name in _STAGE_FUNCTIONS or name in _api.top_level():  # a stage added to the table since
        return getattr(_api, name)
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sfrdask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["__version__", "config", *sorted([*_STAGE_FUNCTIONS, *_LAZY])]
