"""The stage layer: one module per stage, and the registry the CLI, the run file and the Python
API (:mod:`sfrdask.api`) share.

Each stage module holds a frozen ``Params`` (defaults of its tunables from ``sfrdask.yaml`` through
dask.config, see :mod:`sfrdask.stages.base`), a ``Result`` naming what it wrote, ``run(rt, params)``
where ``rt`` is the :class:`~sfrdask.runtime.Runtime` to run on, and ``report(result)``.
"""

from __future__ import annotations

import importlib

from sfrdask.stages.base import Stage

# The one table of stages: name -> (module, one line of help). A module is imported when its stage is
# asked for, so `sfrdask synth` never loads torch. A new stage is a module holding `STAGE` (its Params,
# run, report and, for run files, its section and wiring: sfrdask.stages.base.Stage) and a row here;
# the command line, the Python API (sfrdask.api) and run files (sfrdask.pipeline) are built from both.
TABLE: dict[str, tuple[str, str]] = {
    "synth": ("sfrdask.stages.synth", "write a synthetic SDSS survey (HiSS-Cube file + MPA-JHU catalogues)"),
    "build-cube": (
        "sfrdask.stages.build_cube",
        "build a HiSS-Cube file from SDSS frame and spectrum FITS files",
    ),
    "info": ("sfrdask.stages.info", "describe a HiSS-Cube file: levels, counts, band order, NaN, labels"),
    "ingest": ("sfrdask.stages.ingest", "convert a HiSS-Cube file (+ labels) to a zarr v3 store"),
    "filter": (
        "sfrdask.stages.filter",
        "select objects (FLAG, class, bad pixels) and assign train/validation/test",
    ),
    "stats": ("sfrdask.stages.stats", "statistics and plots of the label over the selection"),
    "deblend": ("sfrdask.stages.deblend", "isolate the central object of every selected cutout (sep)"),
    "pca": ("sfrdask.stages.pca", "standardise + incremental PCA fitted on the training split"),
    "preprocess": ("sfrdask.stages.preprocess", "filter, stats, deblend and PCA in one go"),
    "models": ("sfrdask.stages.models", "list the models the registry knows"),
    "train": ("sfrdask.stages.train", "train models on a preprocessed store; results table in --out"),
    "evaluate": (
        "sfrdask.stages.evaluate",
        "score a trained model (run directory, best.pt or model.npz) on a store",
    ),
    "predict": (
        "sfrdask.stages.predict",
        "SFR catalogue with calibrated intervals for every object of a cube (or store)",
    ),
    "explain": (
        "sfrdask.stages.explain",
        "what a trained network looks at: attributions over wavelength and pixels",
    ),
    "study": (
        "sfrdask.stages.study",
        "the resolution study: every model at every level, trainings fanned out over the cluster",
    ),
    "plot-labels": ("sfrdask.stages.plot_labels", "plot the label distribution of a store (PNG)"),
    "scene": ("sfrdask.stages.scene", "the Scene experiment: audio (MFCC) + frame classification, fused"),
    "scene-synth": ("sfrdask.stages.scene_synth", "write the synthetic stand-in for the Scene data set"),
}


def names() -> tuple[str, ...]:
    """Every stage, in the table's order (the order a run file runs them in)."""
    return tuple(TABLE)


def help_of(name: str) -> str:
    return TABLE[name][1]


def get_stage(name: str) -> Stage:
    """The stage called ``name`` (``synth``, ``ingest``, ..., ``predict``)."""
    if name not in TABLE:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(TABLE)}")
    return importlib.import_module(TABLE[name][0]).STAGE


def run_file_stages() -> tuple[str, ...]:
    """The stages a run file can run (those that declare a section), in the order they run."""
    return tuple(name for name in TABLE if get_stage(name).section)


__all__ = ["TABLE", "Stage", "get_stage", "help_of", "names", "run_file_stages"]
