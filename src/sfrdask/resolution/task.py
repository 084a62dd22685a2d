"""One training of the study, as a Dask task runs it on a worker (or this process runs it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dask
from distributed import get_worker

from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.resolution.grid import CONTROL, Training
from sfrdask.trained.modelling import train
from sfrdask.training.loop import set_worker_threads

METRICS = ("r2", "rmse", "mae", "mse")
TRAIN_SETTINGS = ("learning_rate", "weight_decay")  # tuned settings that are TrainSpec fields; the
# others (dropout, width) are the network's build options


def run_training(
    store: str, t: Training, out: str, settings: dict[str, Any], tuned: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train ``t`` on ``store`` in this process (torch threads = the worker's threads) and return its
    record row. Each training writes under its own ``out/<key>`` directory, so concurrent trainings
    never share a results table.

    ``settings``: ``epochs`` (the cap of one leg), ``epoch_limit`` (the hard limit), ``batch_size``.
    A network stopped at its cap goes on from its checkpoint, one more leg of ``epochs`` at a time,
    until patience stops it or ``epoch_limit`` is reached; the row says why it stopped, its best
    epoch, how often it was continued and its validation curve. ``tuned``: the cell's chosen
    settings (learning rate, weight decay, dropout, width). The row keeps the test predictions, for
    the paired bootstrap of the report (:mod:`sfrdask.resolution.compare`)."""
    set_worker_threads()
    t0 = time.perf_counter()
    settings = dict(settings)
    leg = int(settings.pop("epochs"))
    limit = int(settings.pop("epoch_limit", leg))
    tuned = dict(tuned or {})
    overrides = {k: tuned.pop(k) for k in TRAIN_SETTINGS if k in tuned}
    options = {**tuned, **({"stem": "average"} if t.setup == CONTROL else {"stem": t.stem} if t.stem else {})}
    kwargs = {**settings, **overrides, "seed": t.seed, "train_fraction": t.train_fraction,
              "options": options or None}  # fmt: skip
    where = dict(out=str(Path(out) / t.key), progress=False, with_ceilings=False)  # the report has them
    legs = 0
    # the store is read in this task's own thread: a dask.compute on the worker's client would
    # secede from the worker's thread, and the worker would start another training beside it
    with dask.config.set(scheduler="synchronous"):
        r = train(store, t.model, t.image_zoom, t.spectrum_zoom, **where, **kwargs, epochs=min(leg, limit))
        while r.stop == "cap" and _last_phase_epochs(r.history) < limit:
            legs += 1
            cap = min(_last_phase_epochs(r.history) + leg, limit)
            r = train(
                store, t.model, t.image_zoom, t.spectrum_zoom, **where, **kwargs, epochs=cap, resume=True
            )
    val = [h for h in r.history if h["phase"] == "regress"]
    return {
        "model": t.model,
        "seed": t.seed,
        "setup": t.setup,
        "stem": t.stem,
        "image_zoom": t.image_zoom,
        "spectrum_zoom": t.spectrum_zoom,
        "image_px": image_size(t.image_zoom) if t.image_zoom is not None else None,
        "spectrum_samples": spectrum_samples(t.spectrum_zoom) if t.spectrum_zoom is not None else None,
        **{k: float(r.metrics[k]) for k in METRICS},
        "n_train": r.n_train,
        "n_test": r.n_test,
        "epochs": r.epochs,
        "stop": r.stop or "fit",  # trees: fitted, no epochs
        "best_epoch": r.best_epoch,
        "continued": legs,
        "epoch_cap": leg,
        "epoch_limit": limit,
        "tuned": {**overrides, **tuned},
        "val_curve": [round(float(h["val_loss"]), 5) for h in val],
        "test_objects": [int(x) for x in r.test.objects],
        "test_true": [round(float(x), 5) for x in r.test.true],
        "test_predicted": [round(float(x), 5) for x in r.test.predicted],
        "train_samples_per_s": float(r.train_samples_per_s or 0.0),
        "inference_samples_per_s": float(r.inference_samples_per_s),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "run_dir": r.run_dir,
        "worker": _worker(),
    }


def _last_phase_epochs(history: list[dict[str, Any]]) -> int:
    """Epochs of the last phase (the regression; a contrastive network pre-trains first)."""
    return sum(1 for h in history if h["phase"] == history[-1]["phase"]) if history else 0


def _worker() -> str:
    try:
        return str(get_worker().address)
    except ValueError:
        return "client"
