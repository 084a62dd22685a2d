"""Why a training stopped, its best epoch, and a training at its cap continued from its checkpoint."""

from __future__ import annotations

import json

import pandas as pd

from sfrdask.resolution.grid import Training
from sfrdask.resolution.task import run_training
from sfrdask.trained.modelling import train

FAST = {"batch_size": 16, "progress": False}


def test_the_stop_reason_and_best_epoch_are_recorded(store, tmp_path):
    capped = train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path / "a", epochs=3, patience=50, **FAST)
    assert capped.stop == "cap" and capped.epochs == 3 and 1 <= capped.best_epoch <= 3
    history = pd.read_csv(tmp_path / "a" / "spectrum-mlp" / "spectrum3-AVG" / "history.csv")
    assert capped.best_epoch == int(history.val_loss.idxmin()) + 1
    # a learning rate this high never improves on the first epoch: patience 1 stops it at epoch 2
    stopped = train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path / "b", epochs=50, patience=1,
                    learning_rate=0.0, **FAST)  # fmt: skip
    assert stopped.stop == "patience" and stopped.epochs == 2 and stopped.best_epoch == 1
    saved = json.loads((tmp_path / "b" / "spectrum-mlp" / "spectrum3-AVG" / "metrics.json").read_text())
    assert saved["stop"] == "patience" and saved["best_epoch"] == 1


def test_a_training_at_its_cap_goes_on_from_its_checkpoint_up_to_the_limit(store, tmp_path):
    settings = {"epochs": 2, "epoch_limit": 5, "batch_size": 16, "patience": 50}
    row = run_training(str(store), Training("spectrum-mlp", None, 3, 0), str(tmp_path), settings)
    assert row["stop"] == "cap" and row["epochs"] == 5 and row["continued"] == 2  # 2 -> 4 -> 5
    assert len(row["val_curve"]) == 5 and row["epoch_limit"] == 5
    # the same five epochs in one go: continuing from checkpoints changes nothing
    once = train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path / "once", epochs=5, patience=50, **FAST,
                 options={"stem": "common"})  # fmt: skip
    assert [round(float(h["val_loss"]), 5) for h in once.history] == row["val_curve"]
    assert row["r2"] == once.metrics["r2"]
    assert len(row["test_objects"]) == len(row["test_predicted"]) == len(row["test_true"]) == row["n_test"]
