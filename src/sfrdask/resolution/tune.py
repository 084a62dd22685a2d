"""Tuning of the settings that matter, per network and level, on the validation split only.

Each cell of the study (a network at its levels) gets an Optuna study of ``budget`` trials: learning
rate, weight decay, dropout and width (the widths a network's builder accepts), sampled by TPE, with
the defaults as the first trial, and pruned by the median rule on the validation loss per epoch.
The trials are Dask tasks on the study's own cluster, all cells at once; their common storage is a
journal file in the study's work directory (a shared filesystem on SLURM), so an interrupted study
resumes its tuning where it stopped, and a worker that dies loses only the trial it was running.
A trial trains with ``validation_only`` (:class:`sfrdask.training.spec.TrainSpec`): the test split
is never opened. The chosen settings of every cell go to ``chosen.json`` beside the journal.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import dask
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sfrdask import config
from sfrdask.io.atomic import write_text
from sfrdask.models import get_model
from sfrdask.resolution.fanout import fan_out
from sfrdask.resolution.grid import CONTROL, Training
from sfrdask.resolution.task import TRAIN_SETTINGS
from sfrdask.trained.modelling import train_on_validation
from sfrdask.training.loop import set_worker_threads

JOURNAL = "journal.log"
CHOSEN = "chosen.json"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def tunable(model: str) -> bool:
    """Models trained by epochs (networks) are tuned; trees and physics keep their settings."""
    return get_model(model).traits.epochs


def defaults(model: str) -> dict[str, Any]:
    """The settings a network trains with untuned: sfrdask.yaml's and its builder's defaults."""
    build = inspect.signature(get_model(model).build).parameters
    out: dict[str, Any] = {
        "learning_rate": float(config.get("train.learning-rate")),
        "weight_decay": float(config.get("train.weight-decay")),
    }
    if "dropout" in build:
        d = build["dropout"].default
        out["dropout"] = float(d[0] if isinstance(d, tuple) else d)
    if "width" in build:
        out["width"] = int(build["width"].default)
    return out


def suggest(trial: optuna.Trial, model: str) -> dict[str, Any]:
    """One trial's settings: learning rate and weight decay on log scales, dropout, and the width
    at half, once and twice the network's default."""
    d = defaults(model)
    out: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 2e-4, 5e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }
    if "dropout" in d:
        out["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    if "width" in d:
        out["width"] = trial.suggest_categorical("width", [d["width"] // 2, d["width"], 2 * d["width"]])
    return out


def storage(tuning: Path) -> JournalStorage:
    tuning.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(tuning / JOURNAL)))


def _study(journal: JournalStorage, cell: str) -> optuna.Study:
    seed = zlib.crc32(cell.encode())  # a sampler stream of its own per cell, the same on every rerun
    return optuna.create_study(
        study_name=cell,
        storage=journal,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=8),
    )


def missing_trials(tuning: Path, t: Training, budget: int, journal: JournalStorage | None = None) -> int:
    """Trials still to run for ``t``'s cell. Run between fan-outs, when no trial can be running:
    a trial left RUNNING by a dead worker or an interrupt is marked failed (only it is lost), and
    the defaults trial is queued again if it never finished. ``journal``: the storage, when the
    caller has it open already (each opening replays the whole journal file)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(journal or storage(tuning), t.tuning_cell)
    for tr in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(tr._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    base = defaults(t.model)
    queued = [tr.system_attrs.get("fixed_params") for tr in trials if tr.state == TrialState.WAITING]
    if not any(tr.params == base for tr in trials if tr.state in FINISHED) and base not in queued:
        study.enqueue_trial(base)  # (a queued trial's params are its fixed_params until it runs)
    return max(0, budget - sum(tr.state in FINISHED for tr in trials))


def run_trial(store: str, t: Training, tuning: str, settings: dict[str, Any]) -> dict[str, Any]:
    """One trial of ``t``'s cell (a Dask task): ask the journal for settings, train on the training
    split while reporting each epoch's validation loss (pruned when the median rule says so), tell
    the journal the best validation loss. Its run directory is removed afterwards."""
    set_worker_threads()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(storage(Path(tuning)), t.tuning_cell)
    trial = study.ask()
    params = suggest(trial, t.model)
    out = Path(tuning) / "runs" / t.tuning_cell / f"trial{trial.number}"
    options = {k: v for k, v in params.items() if k not in TRAIN_SETTINGS}

    def report(row: dict[str, Any]) -> None:
        if row["phase"] != "regress":
            return
        trial.report(row["val_loss"], row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned()

    t0 = time.perf_counter()
    try:
        with dask.config.set(scheduler="synchronous"):  # as a training task: no seceding
            done = train_on_validation(
                store,
                t.model,
                t.image_zoom,
                t.spectrum_zoom,
                out=str(out),
                report=report,
                seed=0,
                options=options,
                **settings,
                **{k: params[k] for k in TRAIN_SETTINGS},
            )
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        state, value = "pruned", None
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        study.tell(trial, done.best_val_loss)
        state, value = "complete", done.best_val_loss
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "cell": t.tuning_cell,
        "trial": trial.number,
        "state": state,
        "value": value,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def tune_all(
    client: Any,
    store: Path,
    cells: list[Training],
    budget: int,
    tuning: Path,
    settings: dict[str, Any],
    retries: int = 2,
    resources: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Tune every cell of ``cells`` (one training per cell stands for it) with ``budget`` finished
    trials each, fanned out over ``client`` (here, one after another, without one). Returns and
    writes (``tuning/chosen.json``) the chosen settings per cell: the best finished trial's, or
    the defaults with ``budget`` 0."""
    # one per cell, not per seed; a control cell takes the settings of the cell it must reproduce
    # (a training with the other stem uses its twin's: tuned with the configured stem)
    cells = list(
        {t.tuning_cell: t for t in cells if tunable(t.model) and t.setup != CONTROL and not t.stem}.values()
    )
    if budget <= 0:
        chosen = {t.tuning_cell: {"params": defaults(t.model), "tuned": False} for t in cells}
        write_text(
            tuning / CHOSEN,
            json.dumps({"budget": 0, "epochs": settings["epochs"], "cells": chosen}, indent=1),
        )
        return {k: v["params"] for k, v in chosen.items()}
    journal = storage(tuning)
    todo = [t for t in cells for _ in range(missing_trials(tuning, t, budget, journal))]
    n, t0 = len(todo), time.perf_counter()

    def done(k: int, t: Training, row: dict[str, Any]) -> None:
        v = f"validation loss {row['value']:.4f}" if row["value"] is not None else row["state"]
        took = time.perf_counter() - t0
        print(f"tune: {k}/{n} trials ({took:.0f} s) {row['cell']} trial {row['trial']}: {v}", file=sys.stderr,
              flush=True)  # fmt: skip

    def failed(t: Training, e: Exception) -> None:  # a trial that failed every try: the cell keeps the others
        print(
            f"tune: a trial of {t.tuning_cell} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True
        )

    fan_out(client, run_trial, todo, lambda t: (str(store), t, str(tuning), settings),
            lambda t: f"tune-{t.tuning_cell}", done, failed, retries, resources)  # fmt: skip
    return write_chosen(tuning, cells, budget, settings["epochs"])


def write_chosen(tuning: Path, cells: list[Training], budget: int, epochs: int) -> dict[str, dict[str, Any]]:
    """The best finished trial of every cell (the defaults where none finished), written to
    ``chosen.json`` with the trial counts."""
    out, table = {}, {}
    journal = storage(tuning)  # the trials' journal as it stands now, opened (replayed) once
    for t in cells:
        study = _study(journal, t.tuning_cell)
        trials = study.get_trials(deepcopy=False)
        complete = [tr for tr in trials if tr.state == TrialState.COMPLETE]
        best = min(complete, key=lambda tr: tr.value) if complete else None
        params = {**defaults(t.model), **best.params} if best is not None else defaults(t.model)
        out[t.tuning_cell] = params
        table[t.tuning_cell] = {
            "params": params,
            "tuned": best is not None,
            "best_val_loss": best.value if best else None,
            "default_val_loss": next((tr.value for tr in complete if tr.params == defaults(t.model)), None),
            "complete": len(complete),
            "pruned": sum(tr.state == TrialState.PRUNED for tr in trials),
            "failed": sum(tr.state == TrialState.FAIL for tr in trials),
        }
    write_text(tuning / CHOSEN, json.dumps({"budget": budget, "epochs": epochs, "cells": table}, indent=1))
    return out


def read_chosen(tuning: Path) -> dict[str, dict[str, Any]]:
    """The chosen settings per cell as recorded (``--report-only``); none when nothing was tuned."""
    path = tuning / CHOSEN
    if not path.exists():
        return {}
    return {cell: v["params"] for cell, v in json.loads(path.read_text())["cells"].items()}


def tuning_table(tuning: Path) -> list[dict[str, Any]]:
    """One row per tuned cell for the report: the chosen settings, the trials, and the validation
    loss of the best trial against the defaults'."""
    path = tuning / CHOSEN
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    rows = []
    for cell, v in saved["cells"].items():
        p = v["params"]
        loss, base = v.get("best_val_loss"), v.get("default_val_loss")
        rows.append(
            {
                "cell": cell,
                "tuned": "yes" if v["tuned"] else "defaults",
                "learning rate": f"{p['learning_rate']:.2g}",
                "weight decay": f"{p['weight_decay']:.2g}",
                "dropout": f"{p['dropout']:.2f}" if "dropout" in p else "",
                "width": p.get("width"),
                "trials complete": v.get("complete", 0),
                "pruned": v.get("pruned", 0),
                "validation loss": f"{loss:.4f}" if loss is not None else "",
                "with defaults": f"{base:.4f}" if base is not None else "",
            }
        )
    return rows
