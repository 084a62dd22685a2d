"""Training with the context, rest-frame spectra, schedules, seeds and the new fusion models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sfrdask.models import get_model
from sfrdask.stages.train import Params
from sfrdask.stages.train import run as run_train
from sfrdask.trained.inference import load_run
from sfrdask.trained.modelling import evaluate, train
from sfrdask.training import TrainSpec
from sfrdask.training.loop import lr_schedule
from tests.conftest import md_rows

FAST = {"epochs": 3, "batch_size": 16, "progress": False}


def test_context_is_an_input_of_every_learned_model_and_can_be_switched_off(store, tmp_path):
    r = train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path, **FAST)
    run = load_run(r.run_dir)
    assert run.inputs == ("spectrum", "context") and run.identity["shapes"]["context"] == [3]
    net = run.build()
    assert net.head.in_features == 64 + 3
    off = train(store, "spectrum-mlp", spectrum_zoom=3, out=tmp_path, context=(), **FAST)
    assert off.run_dir.endswith("spectrum3-AVG-noctx")
    assert load_run(off.run_dir).inputs == ("spectrum",)
    tree = train(store, "gbt-both", 3, 3, out=tmp_path, context=("redshift",), **FAST)
    assert tree.run_dir.endswith("-ctx-redshift")
    assert load_run(tree.run_dir).identity["shapes"]["context"] == [2]
    assert evaluate(tree.run_dir, store)["metrics"]["mse"] == pytest.approx(tree.metrics["mse"])
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert set(table.loc[table.model == "spectrum-mlp", "setup"]) == {"", "noctx"}


def test_physics_models_take_no_context():
    spec = TrainSpec.from_config("s.zarr", "physics-halpha", spectrum_zoom=3, context=("redshift",))
    assert spec.context == () and spec.inputs == get_model("physics-halpha").inputs and spec.variant == ""


def test_rest_frame_spectra_train_and_evaluate_alike(store, tmp_path):
    r = train(store, "spectrum-hybrid", spectrum_zoom=3, out=tmp_path, rest_frame=True, **FAST)
    assert r.run_dir.endswith("-rest") and load_run(r.run_dir).rest_frame
    assert evaluate(r.run_dir, store)["metrics"]["mse"] == pytest.approx(r.metrics["mse"], rel=1e-6)


@pytest.mark.parametrize("model", ["hybrid-fusion", "late-fusion-learned"])
def test_the_strong_fusion_models_train_with_augmentation(store, tmp_path, model):
    r = train(store, model, 3, 3, out=tmp_path, augment=True, **FAST)
    assert np.isfinite(r.metrics["r2"])
    net = load_run(r.run_dir).build()
    if model == "late-fusion-learned":
        w = net.weights.detach()
        assert w.sum().item() == pytest.approx(1.0) and (w > 0).all()
        out = torch.tensor([[1.0, 3.0]])
        assert net.prediction(out).item() == pytest.approx(float(w[0] + 3 * w[1]))


def test_learning_rate_schedules():
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW(params, lr=1e-3)
    plateau = lr_schedule(opt, "plateau", 60, patience=8)
    for _ in range(6):  # no progress: halved after patience // 2 = 4 bad epochs
        plateau.step(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    opt = torch.optim.AdamW(params, lr=1e-3)
    cosine = lr_schedule(opt, "cosine", 4, patience=8)
    lrs = []
    for _ in range(4):
        opt.step()
        cosine.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lr_schedule(opt, "none", 4, 8) is None


def test_seeds_give_mean_and_spread_against_the_ceiling(store, tmp_path):
    p = Params(store=store, models=("early-fusion",), image_zoom=3, spectrum_zoom=3, seeds=(0, 1, 2),
               epochs=2, batch_size=16, out=tmp_path)  # fmt: skip
    from sfrdask.runtime import Runtime

    result = run_train(Runtime.of("synchronous"), p)
    dirs = [r["run_dir"] for r in result.runs]
    assert [d.rsplit("-", 1)[-1] for d in dirs] == ["AVG", "seed1", "seed2"]
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    r2 = table.loc[table.model == "early-fusion", "r2"].to_numpy(float)
    md = (tmp_path / "results.md").read_text()
    row = next(r for r in md_rows(md) if r[:3] == ["early-fusion", "-", "8"])
    assert f"{r2.mean():.3f} +- {r2.std(ddof=1):.3f}" in row
    ceiling = float(table.loc[table.model == "ceiling-information", "r2"].iloc[0])
    assert row[-1] == f"{r2.mean() / ceiling:.2f}"
