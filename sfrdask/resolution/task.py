"""One training of the study, as a Dask task runs it on a worker (or this process runs it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dask
from distributed import get_worker

from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.resolution.grid import Training
from sfrdask.runs import train
from sfrdask.training.loop import set_worker_threads

METRICS = ("r2", "rmse", "mae", "mse")


def run_training(store: str, t: Training, out: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Train ``t`` on ``store`` in this process (torch threads = the worker's threads) and return its
    record row. Each training writes under its own ``out/<key>`` directory, so concurrent trainings
    never share a results table."""
    set_worker_threads()
    t0 = time.perf_counter()
    # the store is read in this task's own thread: a dask.compute on the worker's client would
    # secede from the worker's thread, and the worker would start another training beside it
    with dask.config.set(scheduler="synchronous"):
        r = train(store, t.model, t.image_zoom, t.spectrum_zoom, out=str(Path(out) / t.key), progress=False,
                  **(settings | {"seed": t.seed}))  # fmt: skip
    return {
        "model": t.model,
        "seed": t.seed,
        "image_zoom": t.image_zoom,
        "spectrum_zoom": t.spectrum_zoom,
        "image_px": image_size(t.image_zoom) if t.image_zoom is not None else None,
        "spectrum_samples": spectrum_samples(t.spectrum_zoom) if t.spectrum_zoom is not None else None,
        **{k: float(r.metrics[k]) for k in METRICS},
        "n_train": r.n_train,
        "n_test": r.n_test,
        "epochs": r.epochs,
        "train_samples_per_s": float(r.train_samples_per_s),
        "inference_samples_per_s": float(r.inference_samples_per_s),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "run_dir": r.run_dir,
        "worker": _worker(),
    }


def _worker() -> str:
    try:
        return str(get_worker().address)
    except ValueError:
        return "client"
