"""Tuning per network and level: the validation split only, resumable, a budget of 0 is the
defaults, and a killed worker loses at most its running trial."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from sfrdask.resolution import tune
from sfrdask.resolution.grid import Training
from sfrdask.training import spec as spec_module
from sfrdask.training.data import StoreDataset, split_objects, target_values
from tests.conftest import kill_a_busy_worker_during

CELL = Training("spectrum-mlp", None, 3, 0)
SETTINGS = {"epochs": 2, "batch_size": 16}


def test_tuning_never_reads_the_test_split(store, tmp_path, monkeypatch):
    test_objects = set(split_objects(store, "test", target_values(store, "AVG")).tolist())
    asked, opened = [], []
    real_split, real_init = spec_module.split_objects, StoreDataset.__init__
    monkeypatch.setattr(
        spec_module, "split_objects", lambda s, split, y: asked.append(split) or real_split(s, split, y)
    )

    def init(self, store, objects, *args, **kwargs):
        opened.append(set(objects.tolist()))
        real_init(self, store, objects, *args, **kwargs)

    monkeypatch.setattr(StoreDataset, "__init__", init)
    chosen = tune.tune_all(None, store, [CELL, Training("spectrum-mlp", None, 3, 1)], 3, tmp_path, SETTINGS)
    assert "test" not in asked and set(asked) == {"train", "validation"}
    assert opened and all(not (o & test_objects) for o in opened)
    saved = json.loads((tmp_path / "chosen.json").read_text())
    assert saved["budget"] == 3 and list(saved["cells"]) == [CELL.tuning_cell]  # one cell, whatever the seeds
    cell = saved["cells"][CELL.tuning_cell]
    assert cell["complete"] + cell["pruned"] == 3 and cell["default_val_loss"] is not None
    assert cell["best_val_loss"] <= cell["default_val_loss"]  # the defaults were a trial
    assert chosen[CELL.tuning_cell] == cell["params"] and set(cell["params"]) == {
        "learning_rate", "weight_decay", "dropout", "width"}  # fmt: skip
    assert not (tmp_path / "runs" / CELL.tuning_cell).exists() or not any(
        (tmp_path / "runs" / CELL.tuning_cell).iterdir()
    )


def test_a_budget_of_zero_is_the_defaults_recorded_as_such(tmp_path):
    chosen = tune.tune_all(
        None, "unused", [CELL, Training("gbt-spectrum", None, 3, 0)], 0, tmp_path, SETTINGS
    )
    assert chosen == {CELL.tuning_cell: tune.defaults("spectrum-mlp")}  # trees are not tuned
    saved = json.loads((tmp_path / "chosen.json").read_text())
    cells = {CELL.tuning_cell: {"params": chosen[CELL.tuning_cell], "tuned": False}}
    assert saved == {"budget": 0, "epochs": SETTINGS["epochs"], "cells": cells}


def test_the_defaults_are_queued_once_however_often_the_tuning_resumes(tmp_path):
    for _ in range(3):  # a study interrupted before its first trial ran, resumed twice
        assert tune.missing_trials(tmp_path, CELL, 4) == 4
    study = optuna.load_study(study_name=CELL.tuning_cell, storage=tune.storage(tmp_path))
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING]


def test_an_interrupted_tuning_resumes_where_it_stopped(store, tmp_path):
    tune.tune_all(None, store, [CELL], 2, tmp_path, SETTINGS)
    # an interrupt (or a dead worker) leaves a trial RUNNING: it is failed, and only it is lost
    study = optuna.load_study(study_name=CELL.tuning_cell, storage=tune.storage(tmp_path))
    study.ask()
    assert tune.missing_trials(tmp_path, CELL, 3) == 1
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    tune.tune_all(None, store, [CELL], 3, tmp_path, SETTINGS)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert sum(s in tune.FINISHED for s in states) == 3  # the two before, one more: nothing repeated
    assert tune.missing_trials(tmp_path, CELL, 3) == 0


@pytest.mark.slow
def test_a_worker_killed_during_tuning_loses_at_most_its_running_trial(store, tmp_path):
    cells = [CELL, Training("spectrum-hybrid", None, 3, 0)]
    kill_a_busy_worker_during(
        lambda c: tune.tune_all(c, store, cells, 3, tmp_path, {"epochs": 4, "batch_size": 16})
    )
    assert all(
        tune.missing_trials(tmp_path, t, 3) == 0 for t in cells
    )  # every cell has its 3 finished trials
    for t in cells:
        trials = optuna.load_study(study_name=t.tuning_cell, storage=tune.storage(tmp_path)).get_trials()
        assert sum(tr.state == TrialState.FAIL for tr in trials) <= 1
    assert (
        sum(
            tr.state == TrialState.FAIL
            for t in cells
            for tr in optuna.load_study(study_name=t.tuning_cell, storage=tune.storage(tmp_path)).get_trials()
        )
        <= 1
    )  # the one the kill interrupted, at most
