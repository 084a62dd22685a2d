"""Train and evaluate registered models on a store: the orchestration behind ``sfrdask train`` and
``sfrdask evaluate``, above the model families (:mod:`sfrdask.families`) and the trained-run
reader (:mod:`sfrdask.inference`).

``sfrdask.train`` (:mod:`sfrdask.api`) is the public way in; the stage module
:mod:`sfrdask.stages.train` calls :func:`train` once per model, the resolution study once per
training (:mod:`sfrdask.resolution.task`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfrdask.errors import SfrdaskError
from sfrdask.families import family_of
from sfrdask.inference import load_run
from sfrdask.preprocessing.split import SPLITS
from sfrdask.training.ceilings import ceilings
from sfrdask.training.checkpoint import CheckpointError
from sfrdask.training.metrics import regression_metrics, update_results
from sfrdask.training.spec import TrainSpec, load_splits


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


def evaluate(run: str | Path, store: str | Path, split: str = "test") -> dict[str, Any]:
    """Score a trained model (a run directory, ``best.pt`` or ``model.npz``) on a store's split.

    The model is rebuilt from the registry and the saved weights (``weights_only``) or tree
    arrays (no pickle) by :func:`sfrdask.inference.load_run`; the store must hold the inputs at
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
