"""The stage layer: one module per stage, and the registry the CLI, the run file and the Python
API (:mod:`sfrdask.api`) share.

Each stage module holds a frozen ``Params`` (defaults of its tunables from ``sfrdask.yaml`` through
dask.config, see :mod:`sfrdask.stages.base`), a ``Result`` naming what it wrote, ``run(rt, params)``
where ``rt`` is the :class:`~sfrdask.runtime.Runtime` to run on, and ``report(result)``.
"""

from __future__ import annotations

import importlib

from sfrdask.stages.base import Stage

# name -> (module, attribute, one line of help); a module is imported when its stage is asked for,
# so `sfrdask synth` never loads torch
_WHERE = {
    "synth": ("synth", "STAGE", "write a synthetic SDSS survey (HiSS-Cube file + MPA-JHU catalogues)"),
    "build-cube": ("build_cube", "STAGE", "build a HiSS-Cube file from SDSS frame and spectrum FITS files"),
    "info": ("info", "STAGE", "describe a HiSS-Cube file: levels, counts, band order, NaN, labels"),
    "ingest": ("ingest", "STAGE", "convert a HiSS-Cube file (+ labels) to a zarr v3 store"),
    "filter": (
        "filter",
        "STAGE",
        "select objects (FLAG, class, bad pixels) and assign train/validation/test",
    ),
    "stats": ("stats", "STAGE", "statistics and plots of the label over the selection"),
    "deblend": ("deblend", "STAGE", "isolate the central object of every selected cutout (sep)"),
    "pca": ("pca", "STAGE", "standardise + incremental PCA fitted on the training split"),
    "preprocess": ("preprocess", "STAGE", "filter, stats, deblend and PCA in one go"),
    "models": ("models", "STAGE", "list the models the registry knows"),
    "train": ("train", "STAGE", "train models on a preprocessed store; results table in --out"),
    "evaluate": (
        "evaluate",
        "STAGE",
        "score a trained model (run directory, best.pt or model.npz) on a store",
    ),
    "predict": (
        "predict",
        "STAGE",
        "SFR catalogue with calibrated intervals for every object of a cube (or store)",
    ),
    "explain": (
        "explain",
        "STAGE",
        "what a trained network looks at: attributions over wavelength and pixels",
    ),
    "study": (
        "study",
        "STAGE",
        "the resolution study: every model at every level, trainings fanned out over the cluster",
    ),
    "plot-labels": ("plot_labels", "STAGE", "plot the label distribution of a store (PNG)"),
    "scene": ("scene", "STAGE", "the Scene experiment: audio (MFCC) + frame classification, fused"),
    "scene-synth": ("scene_synth", "STAGE", "write the synthetic stand-in for the Scene data set"),
}
NAMES = tuple(_WHERE)


def help_of(name: str) -> str:
    return _WHERE[name][2]


def get_stage(name: str) -> Stage:
    """The stage called ``name`` (``synth``, ``ingest``, ..., ``predict``)."""
    if name not in _WHERE:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(NAMES)}")
    module, attr, _ = _WHERE[name]
    return getattr(importlib.import_module(f"sfrdask.stages.{module}"), attr)


__all__ = ["NAMES", "Stage", "get_stage", "help_of"]
