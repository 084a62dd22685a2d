"""Fit the models that are not networks: trees on PCA features (saved as plain arrays, no pickle)
and physics estimates (no training; a JSON record of what was run). Networks train in
:mod:`sfrdask.training.loop`; :mod:`sfrdask.trained.families` chooses between them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sfrdask.choices import SPLITS
from sfrdask.io.atomic import write_text
from sfrdask.io.levels import wavelength_grid
from sfrdask.io.store import open_store
from sfrdask.models.trees import TreeArrays, fit_tree
from sfrdask.training.data import Normaliser
from sfrdask.training.loop import split_result, write_outputs
from sfrdask.training.result import FitResult
from sfrdask.training.spec import TrainSpec, as_matrix, load_splits


def fit_trees(spec: TrainSpec) -> FitResult:
    """Fit a tree model on the training PCA features; save it as plain arrays (model.npz)."""
    t0 = time.perf_counter()
    data = load_splits(spec)
    inputs = spec.inputs
    arr = {s: data[s].arrays() for s in SPLITS}
    x = {s: as_matrix(a, inputs) for s, a in arr.items()}
    est = spec.model_spec.build(data.shapes, seed=spec.seed, **spec.options)
    t1 = time.perf_counter()
    est = fit_tree(est, x["train"], data.train.y, x["validation"], data.validation.y)
    fit_s = time.perf_counter() - t1
    trees = TreeArrays.from_estimator(est)
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    _save_trees(run / "model.npz", trees, spec, data.shapes, data.normaliser)
    t2 = time.perf_counter()
    pred = trees.predict(x["test"])
    rate = len(data.test) / max(time.perf_counter() - t2, 1e-9)
    result = split_result(spec, data, pred, trees.predict(x["validation"]), rate)
    result.train_samples_per_s = len(data.train) / max(fit_s, 1e-9)
    result.seconds = time.perf_counter() - t0
    result.details["estimator"] = repr(est)
    write_outputs(spec, result)
    return result


def physics_predict(spec: TrainSpec, ds: Any, estimator: Any) -> np.ndarray:
    """Predictions of a physics model for one split's objects (spectra with errors, redshifts,
    deblended r-band cutouts), read as stored: no normalisation."""
    st = open_store(spec.store, image_zoom=None, spectrum_zoom=spec.spectrum_zoom).isel(object=ds.objects)
    r_images = None
    if "image" in spec.model_spec.inputs:
        r_images = np.concatenate([ds.raw_block(k)["image"][:, 2] for k in range(len(ds.blocks))])
    return estimator.predict(
        wavelength_grid(spec.spectrum_zoom),
        st.spectrum.values.astype(np.float64),
        st.spectrum_error.values.astype(np.float64),
        st.Z.values.astype(np.float64),
        r_images,
        spec.image_zoom or 0,
    )


def fit_physics(spec: TrainSpec) -> FitResult:
    """Score a physics estimate (no training) on the validation and test splits; ``model.json``
    records what was run, so ``evaluate`` can repeat it."""
    t0 = time.perf_counter()
    data = load_splits(spec)
    est = spec.model_spec.build(data.shapes, **spec.options)
    fallback = float(np.median(data.train.y))  # where H-alpha cannot be measured
    val = physics_predict(spec, data.validation, est)
    t1 = time.perf_counter()
    pred = physics_predict(spec, data.test, est)
    rate = len(data.test) / max(time.perf_counter() - t1, 1e-9)
    measured = float(np.isfinite(pred).mean())
    val, pred = np.where(np.isfinite(val), val, fallback), np.where(np.isfinite(pred), pred, fallback)
    result = split_result(spec, data, pred, val, rate)
    result.seconds = time.perf_counter() - t0
    result.details.update(measured_fraction=measured, fallback=fallback)
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    identity = spec.identity(data.shapes)
    saved = {"identity": identity, "options": spec.options, "fallback": fallback}
    write_text(run / "model.json", json.dumps(saved, indent=1))  # complete or absent
    write_outputs(spec, result)
    return result


def _save_trees(path: Path, trees: TreeArrays, spec: TrainSpec, shapes: dict, norm: Normaliser) -> None:
    identity = spec.identity(shapes)
    meta = {"identity": json.dumps(identity)}
    trees.save(path, **meta, **{f"norm_{k}": v for k, v in norm.stats.items()})
