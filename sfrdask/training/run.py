"""Train and evaluate registered models on a store: the entry points behind ``sfrdask train``.

``sfrdask.train`` (:mod:`sfrdask.api`) is the public way in; the stage module
:mod:`sfrdask.stages.train` calls :func:`train` once per model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sfrdask.errors import SfrdaskError
from sfrdask.families import family_of
from sfrdask.io.atomic import write_text
from sfrdask.models.trees import TreeArrays, fit_tree
from sfrdask.training.ceilings import ceilings
from sfrdask.training.checkpoint import CheckpointError
from sfrdask.training.data import Normaliser
from sfrdask.training.loop import _write_outputs, split_result
from sfrdask.training.metrics import regression_metrics, update_results
from sfrdask.training.spec import TrainSpec, as_matrix, load_splits


def train(
    store: str | Path,
    model: str,
    image_zoom: int | None = None,
    spectrum_zoom: int | None = None,
    ranks: int | None = None,
    out: str | Path = "runs",
    client: Any = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train one registered model and add its row to ``OUT/results.*``.

    Networks run on ``ranks`` workers of ``client`` with DDP when ``ranks`` is given (>= 1),
    otherwise in this process. Trees always fit here. Settings not passed come from
    ``sfrdask.train`` in dask.config.
    """
    spec = TrainSpec.from_config(
        store, model, image_zoom=image_zoom, spectrum_zoom=spectrum_zoom, out=str(out), **overrides
    )
    result = family_of(spec.model_spec.family).fit(spec, ranks=ranks, client=client)
    result["run_dir"] = str(spec.run_dir)
    result.update(setup=spec.setup, seed=spec.seed)
    rows = [_row(result, result)] + [_row(result, extra) for extra in result.get("extra_rows", [])]
    truth = {"image_zoom": None, "spectrum_zoom": None, "target": spec.target, "setup": "truth", "seed": 0}
    rows += [_row(truth, c) for c in ceilings(spec.store, spec.target)]
    update_results(out, rows)
    return result


def _row(result: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    m = part["metrics"]
    return {
        "model": part["model"],
        "image_zoom": result["image_zoom"],
        "spectrum_zoom": result["spectrum_zoom"],
        "target": result["target"],
        "setup": result["setup"],
        "seed": result["seed"],
        "image_px": result.get("image_px"),
        "spectrum_samples": result.get("spectrum_samples"),
        **{k: m[k] for k in ("mse", "rmse", "mae", "r2")},
        "n_train": part.get("n_train", result.get("n_train")),
        "n_test": part.get("n_test", result.get("n_test")),
        "train_samples_per_s": result.get("train_samples_per_s"),
        "inference_samples_per_s": part.get("inference_samples_per_s"),
        "epochs": result.get("epochs"),
        "ranks": result.get("ranks", 1),
        "seconds": result.get("seconds"),
    }


def fit_trees(spec: TrainSpec) -> dict[str, Any]:
    """Fit a tree model on the training PCA features; save it as plain arrays (model.npz)."""
    t0 = time.perf_counter()
    data = load_splits(spec)
    inputs = spec.inputs
    arr = {s: data[s].arrays() for s in ("train", "validation", "test")}
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
    result.update(
        {
            "train_samples_per_s": len(data.train) / max(fit_s, 1e-9),
            "epochs": None,
            "ranks": 1,
            "seconds": time.perf_counter() - t0,
            "estimator": repr(est),
        }
    )
    _write_outputs(spec, result)
    return result


def physics_predict(spec: TrainSpec, ds: Any, estimator: Any) -> np.ndarray:
    """Predictions of a physics model for one split's objects (spectra with errors, redshifts,
    deblended r-band cutouts), read as stored: no normalisation."""
    from sfrdask.io.levels import wavelength_grid
    from sfrdask.io.store import open_store

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


def fit_physics(spec: TrainSpec) -> dict[str, Any]:
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
    result.update(train_samples_per_s=None, epochs=None, ranks=1, seconds=time.perf_counter() - t0,
                  measured_fraction=measured, fallback=fallback)  # fmt: skip
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    identity = spec.identity(data.shapes)
    saved = {"identity": identity, "options": spec.options, "fallback": fallback}
    write_text(run / "model.json", json.dumps(saved, indent=1))  # complete or absent
    _write_outputs(spec, result)
    return result


def _save_trees(path: Path, trees: TreeArrays, spec: TrainSpec, shapes: dict, norm: Normaliser) -> None:
    identity = spec.identity(shapes)
    meta = {"identity": json.dumps(identity)}
    trees.save(path, **meta, **{f"norm_{k}": v for k, v in norm.stats.items()})


def evaluate(run: str | Path, store: str | Path, split: str = "test") -> dict[str, Any]:
    """Score a trained model (a run directory, ``best.pt`` or ``model.npz``) on a store's split.

    The model is rebuilt from the registry and the saved weights (``weights_only``) or tree
    arrays (no pickle) by :func:`sfrdask.inference.load_run`; the store must hold the inputs at
    the resolution it was trained for. Inputs are read from the store's ``clean`` and ``pca``
    groups (``sfrdask predict`` recomputes them from raw data; a test checks both agree).
    """
    from sfrdask.inference import load_run
    from sfrdask.preprocessing.split import SPLITS

    if split not in SPLITS:
        raise SfrdaskError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    trained = load_run(run)
    identity = trained.identity
    spec = TrainSpec.from_config(
        store,
        identity["model"],
        image_zoom=identity["image_zoom"],
        spectrum_zoom=identity["spectrum_zoom"],
        target=identity["target"],
        context=tuple(identity.get("context", ())),
        rest_frame=bool(identity.get("rest_frame", False)),
        progress=False,
    )
    data = load_splits(spec, normaliser=trained.normaliser)
    shapes = {k: list(v) for k, v in sorted(data.shapes.items())}
    if shapes != identity["shapes"]:
        raise CheckpointError(
            f"{trained.path}: trained on inputs {identity['shapes']}, but {store} gives {shapes} at "
            f"image zoom {spec.image_zoom} / spectrum zoom {spec.spectrum_zoom}"
        )
    ds = data[split]
    pred = family_of(trained.family).predict_split(spec, trained, trained.build(), ds)
    return {
        **identity,
        "split": split,
        "metrics": regression_metrics(ds.y, pred),
        "objects": ds.objects,
        "predicted": pred,
        "true": ds.y,
        "run_dir": str(trained.path),
    }
