"""Training end to end on a tiny store: outputs, resume, safe checkpoints, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sfrdask.errors import StoreError
from sfrdask.models import ModelError
from sfrdask.trained.modelling import evaluate, train
from sfrdask.training import TrainSpec
from sfrdask.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sfrdask.training.loop import fit_net

FAST = {"epochs": 3, "batch_size": 16, "progress": False}


def test_train_writes_outputs_and_evaluate_reproduces_them(store, tmp_path):
    out = tmp_path / "runs"
    r = train(store, "early-fusion", image_zoom=3, spectrum_zoom=3, out=out, **FAST)
    run = out / "early-fusion" / "image3-spectrum3-AVG"
    for f in ("best.pt", "last.pt", "metrics.json", "predictions.csv", "history.csv", "pred_vs_true.png"):
        assert (run / f).stat().st_size > 0, f
    table = pd.read_csv(out / "results.csv")
    assert table.loc[0, "model"] == "early-fusion" and table.loc[0, "image_px"] == 8
    md = (out / "results.md").read_text().splitlines()
    assert [c.strip() for c in md[0].strip("|").split("|")][:2] == ["model", "setup"]
    assert md[2].strip("|").split("|")[0].strip() == "early-fusion"  # the csv's row, laid out
    assert json.loads((out / "results.json").read_text())[0]["n_test"] == r.n_test
    assert np.isfinite([r.metrics[k] for k in ("mse", "rmse", "mae", "r2")]).all()
    assert r.train_samples_per_s > 0 and r.inference_samples_per_s > 0
    again = evaluate(run, store)
    assert again["metrics"]["mse"] == pytest.approx(r.metrics["mse"], rel=1e-6)


def test_a_tree_and_a_spectrum_net_share_the_results_table(store, tmp_path):
    train(store, "tree-both", image_zoom=3, spectrum_zoom=3, out=tmp_path, **FAST)
    r = train(store, "spectrum-mlp", image_zoom=3, spectrum_zoom=3, out=tmp_path, **FAST)
    assert r.image_zoom is None  # a spectrum model's identity has no image level
    table = pd.read_csv(tmp_path / "results.csv")
    assert set(table.model) == {"tree-both", "spectrum-mlp", "ceiling-label-noise", "ceiling-information"}
    r2 = table.set_index("model")["r2"]  # the ceilings come from the synthetic survey's truth
    assert 0 < r2["ceiling-information"] <= 1 and r2["ceiling-label-noise"] > r2["spectrum-mlp"]
    tree = evaluate(tmp_path / "tree-both" / "image3-spectrum3-AVG", store)
    assert np.isfinite(tree["metrics"]["r2"])


class Interrupt(Exception):
    pass


def _stop_after(n: int):
    seen = []

    def report(row):
        seen.append(row)
        if len(seen) == n:
            raise Interrupt  # as if the job were killed right after this epoch's checkpoint

    return report


@pytest.mark.parametrize(
    "model, stop_after",
    [("late-fusion", 3), ("contrastive", 2), ("contrastive", 4)],  # contrastive: in pretrain, in regress
)
def test_resume_continues_to_the_same_weights(store, tmp_path, model, stop_after):
    """Interrupted after some epochs, then --resume: bitwise the weights of an uninterrupted run."""
    common = dict(image_zoom=3, spectrum_zoom=3, batch_size=16, progress=False, patience=100, epochs=3)
    common["pretrain_epochs"] = 3
    full = fit_net(TrainSpec.from_config(store, model, out=str(tmp_path / "a"), **common))
    with pytest.raises(Interrupt):
        fit_net(
            TrainSpec.from_config(store, model, out=str(tmp_path / "b"), **common),
            report=_stop_after(stop_after),
        )
    resumed = fit_net(TrainSpec.from_config(store, model, out=str(tmp_path / "b"), resume=True, **common))
    assert resumed.details["resumed"] and resumed.epochs == full.epochs
    assert resumed.details["digest"] == full.details["digest"]


def test_contrastive_reports_knn_on_its_embedding(store, tmp_path):
    r = train(
        store, "contrastive", 3, 3, out=tmp_path, epochs=2, pretrain_epochs=2, batch_size=16, progress=False
    )
    assert [e.model for e in r.extra_rows] == ["contrastive-knn"]
    assert {"contrastive", "contrastive-knn"} <= set(pd.read_csv(tmp_path / "results.csv").model)
    assert [h["phase"] for h in r.history] == ["pretrain"] * 2 + ["regress"] * 2


def test_bad_requests_are_refused_clearly(store, tmp_path):
    with pytest.raises(ModelError, match="without a stem needs images of at least 16 px, got 8 px"):
        train(store, "image-resnet", image_zoom=3, out=tmp_path, stem="none", **FAST)
    with pytest.raises(StoreError, match=r"image zoom level 1 .*not in the store"):
        train(store, "image-cnn", image_zoom=1, out=tmp_path, **FAST)
    with pytest.raises(StoreError, match="needs --image-zoom"):
        train(store, "image-cnn", out=tmp_path, **FAST)


def test_checkpoints_are_checked_and_loaded_weights_only(store, tmp_path):
    train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path, **FAST)
    run = tmp_path / "spectrum-mlp" / "spectrum3-AVG"
    with pytest.raises(CheckpointError, match="made for model = 'spectrum-mlp'"):
        load_checkpoint(run / "last.pt", {"model": "spectrum-hybrid"})
    with pytest.raises(CheckpointError, match="made for spectrum_zoom = 3"):
        load_checkpoint(run / "last.pt", {"spectrum_zoom": 2})
    # a checkpoint whose identity says zoom 2 cannot be resumed by a zoom-3 run
    ck = torch.load(run / "last.pt", weights_only=True)
    save_checkpoint(run / "last.pt", {**{k: v for k, v in ck.items() if k != "format"}, "spectrum_zoom": 2})
    with pytest.raises(CheckpointError, match="spectrum_zoom"):
        train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path, resume=True, **FAST)


class Payload:  # a pickled object: weights_only loading must refuse it
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_in_a_checkpoint_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "sfrdask-checkpoint-1", "model_state": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a loadable sfrdask checkpoint"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        evaluate(tmp_path / "junk.pt", tmp_path)
