"""Train, evaluate and calibrate registered models on a store: the orchestration behind ``sfrdask
train``, ``sfrdask evaluate`` and the calibration step of ``sfrdask predict``, above the model
families (:mod:`sfrdask.trained.families`) and the trained-run reader (:mod:`sfrdask.trained.inference`).

``sfrdask.train`` (:mod:`sfrdask.api`) is the public way in; the stage module
:mod:`sfrdask.stages.train` calls :func:`train` once per model, the resolution study once per
training (:mod:`sfrdask.resolution.task`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sfrdask.errors import SfrdaskError
from sfrdask.io.sfr_catalogue import object_classes
from sfrdask.io.store import open_store
from sfrdask.preprocessing.split import SPLITS
from sfrdask.synthetic.truth import store_truth
from sfrdask.trained.calibration import (
    POOLED_CHECK,
    Calibration,
    coverage_table,
    cross_fitted_intervals,
    difficulty,
    fit_calibration,
    pooled,
    reliability_plot,
)
from sfrdask.trained.families import family_of
from sfrdask.trained.inference import Preparation, TrainedRun, ensemble, levels, load_run, predictions
from sfrdask.training.ceilings import ceilings
from sfrdask.training.checkpoint import CheckpointError
from sfrdask.training.data import target_values
from sfrdask.training.loop import ValidationDone, fit_net
from sfrdask.training.metrics import regression_metrics, update_results
from sfrdask.training.result import FitResult
from sfrdask.training.spec import TrainSpec, load_splits


def train(
    store: str | Path,
    model: str,
    image_zoom: int | None = None,
    spectrum_zoom: int | None = None,
    ranks: int | None = None,
    out: str | Path = "runs",
    client: Any = None,
    with_ceilings: bool = True,
    **overrides: Any,
) -> FitResult:
    """Train one registered model and add its row to ``OUT/results.*``.

    Networks run on ``ranks`` workers of ``client`` with DDP when ``ranks`` is given (>= 1),
    otherwise in this process. Trees always fit here. Settings not passed come from
    ``sfrdask.train`` in dask.config. ``with_ceilings``: the survey's ceiling rows beside it (a
    fit of their own; the resolution study computes them once for its report instead).
    """
    spec = TrainSpec.from_config(
        store, model, image_zoom=image_zoom, spectrum_zoom=spectrum_zoom, out=str(out), **overrides
    )
    t0 = time.perf_counter()
    result = family_of(spec.model_spec.family).fit(spec, ranks, client)
    if result.seconds is None:  # a family that does not time its own fit
        result.seconds = time.perf_counter() - t0
    result.run_dir, result.setup, result.seed = str(spec.run_dir), spec.setup, spec.seed
    main = {**result.record(), "setup": result.setup, "seed": result.seed}
    rows = [_row(main, main)] + [_row(main, asdict(extra)) for extra in result.extra_rows]
    truth = {"image_zoom": None, "spectrum_zoom": None, "target": spec.target, "setup": "truth", "seed": 0}
    rows += [_row(truth, c) for c in ceilings(spec.store, spec.target)] if with_ceilings else []
    update_results(out, rows)
    return result


def train_on_validation(
    store: str | Path,
    model: str,
    image_zoom: int | None = None,
    spectrum_zoom: int | None = None,
    out: str | Path = "runs",
    report: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> ValidationDone:
    """Train one network in this process on the training split and score it on the validation
    split alone (a tuning trial: the test split is never opened, no results row is written);
    ``report`` gets every epoch's row (a pruner may raise from it)."""
    spec = TrainSpec.from_config(
        store,
        model,
        image_zoom=image_zoom,
        spectrum_zoom=spectrum_zoom,
        out=str(out),
        validation_only=True,
        progress=False,
        **overrides,
    )
    if not spec.model_spec.traits.epochs:
        raise SfrdaskError(
            f"model {model!r} is not a network: only networks train on the validation split alone"
        )
    done = fit_net(spec, report=report)
    assert isinstance(done, ValidationDone)
    return done


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


def evaluate(run: str | Path, store: str | Path, split: str = "test") -> dict[str, Any]:
    """Score a trained model (a run directory, ``best.pt`` or ``model.npz``) on a store's split.

    The model is rebuilt from the registry and the saved weights (``weights_only``) or tree
    arrays (no pickle) by :func:`sfrdask.trained.inference.load_run`; the store must hold the inputs at
    the resolution it was trained for. Inputs are read from the store's ``clean`` and ``pca``
    groups (``sfrdask predict`` recomputes them from raw data; a test checks both agree).
    """
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


def _truth(store: Path) -> pd.Series | None:
    """True log SFR per store object, for a store ingested from a synthetic survey."""
    t = store_truth(store, ["object", "logsfr_true"])
    return None if t is None else t["logsfr_true"]


def calibrate(
    runs: list[TrainedRun],
    preps: list[Preparation],
    client: Any,
    chunk_mb: float,
    seed: int,
    plots: Path | None = None,
) -> tuple[Calibration, pd.DataFrame, list[Path]]:
    """Calibrate the (ensemble of) runs on their store's validation split and report the test split.

    Returns the ensemble's calibration, the coverage rows of every run (and of the ensemble) and
    the plots written: ``{plots}.calibration-{model}.png`` per run (nothing goes into a run
    directory, which may be shared or read-only)."""
    store = runs[0].store
    sel = xr.open_zarr(store, group="selection", zarr_format=3, consolidated=False)
    split = sel["split"].values
    y_all = target_values(store, runs[0].target)
    want = np.flatnonzero(
        np.isin(split, [SPLITS.index("validation"), SPLITS.index("test")]) & np.isfinite(y_all)
    )
    ds = open_store(store, *levels(runs)).isel(object=want)
    table = predictions(ds, runs, preps, client, chunk_mb, desc=f"calibration ({store.name})")
    y = y_all[want]
    is_val = split[want] == SPLITS.index("validation")
    truth = _truth(store)
    true = truth.reindex(want).to_numpy() if truth is not None else None
    classes = object_classes(ds)
    candidates = [(r.model, table[f"pred_{i}"].to_numpy(), [r]) for i, r in enumerate(runs)]
    if len(runs) > 1:
        candidates.append(
            ("ensemble(" + "+".join(r.model for r in runs) + ")", ensemble(table, len(runs)), runs)
        )
    pool = pooled(int(np.sum(is_val & np.isfinite(y))))
    fit = np.ones(len(y), bool) if pool else is_val  # the rows the catalogue's intervals rest on
    check = fit if pool else ~is_val  # the rows their coverage is measured on
    split_name = POOLED_CHECK if pool else "test"
    rows, reports, final = [], [], None
    for name, pred, members in candidates:
        x = difficulty(pred, ds, table, len(members))
        cal = fit_calibration(x[fit], y[fit], classes[fit], seed=seed)
        if pool:  # each row's interval from a calibration without it: an honest coverage check
            bounds = cross_fitted_intervals(x, y, classes, seed=seed)
        else:
            bounds = cal.intervals(x[check], classes[check])
        cov = coverage_table(
            y[check], pred[check], bounds, classes[check], None if true is None else true[check]
        )
        cov.insert(0, "model", name)
        cov.insert(1, "split", split_name)
        rows.append(cov)
        if plots is not None and len(members) == 1:
            panels = {"MPA-JHU log SFR (AVG)": (y[check], bounds)}
            if true is not None:
                panels["true log SFR (synthetic survey)"] = (true[check], bounds)
            r = members[0]
            png = plots.with_name(f"{plots.name}.calibration-{r.model}.png")
            reports.append(reliability_plot(panels, png, f"{r.model}: calibration, {split_name}"))
        final = cal
    return final, pd.concat(rows, ignore_index=True), reports
