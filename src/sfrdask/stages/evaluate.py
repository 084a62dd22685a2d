"""The evaluate stage: a trained model scored on one split of a store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfrdask.choices import SPLITS
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class Params:
    run: Path = required(
        "run directory (or its best.pt / model.npz / model.json)", positional=True, input=True
    )
    store: Path = required("zarr store holding the inputs at the trained levels", input=True)
    split: str = option("test", "which split to score", choices=SPLITS)


@dataclass(frozen=True)
class Result:
    model: str
    image_zoom: int | None
    spectrum_zoom: int | None
    target: str
    split: str
    store: Path
    metrics: dict[str, float]
    run_dir: Path
    predictions: Any  # DataFrame: object, true, predicted


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.trained.modelling import evaluate

    with rt.active():
        r = evaluate(p.run, p.store, split=p.split)
    table = pd.DataFrame({"object": r["objects"], "true": r["true"], "predicted": r["predicted"]})
    return Result(
        r["model"],
        r["image_zoom"],
        r["spectrum_zoom"],
        r["target"],
        p.split,
        p.store,
        r["metrics"],
        Path(r["run_dir"]),
        table,
    )


def report(r: Result) -> list[str]:
    m = r.metrics
    return [
        f"{r.model} (image zoom {r.image_zoom}, spectrum zoom {r.spectrum_zoom}, target {r.target}) "
        f"on the {r.split} split of {r.store}: MSE {m['mse']:.4f}, RMSE {m['rmse']:.4f}, "
        f"MAE {m['mae']:.4f}, R^2 {m['r2']:.4f} (n = {m['n']})"
    ]


STAGE = Stage(Params, run, report, cluster_overrides=lambda p, kind: None)
