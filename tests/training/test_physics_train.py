"""physics-halpha through train/evaluate: a results row like any model, evaluated again from its record."""

from __future__ import annotations

import json

import dask
import numpy as np
import pytest

from sfrdask.trained.modelling import evaluate, train


@pytest.mark.parametrize("model,zooms", [("physics-halpha", (None, 2)), ("physics-halpha-aperture", (3, 2))])
def test_physics_models_train_and_evaluate(store, tmp_path, model, zooms):
    with dask.config.set(scheduler="threads"):
        r = train(store, model, *zooms, out=tmp_path, progress=False)
        again = evaluate(
            r_dir := tmp_path / model / next(p.name for p in (tmp_path / model).iterdir()), store
        )
    assert np.isfinite(r.metrics["mse"]) and 0 <= r.details["measured_fraction"] <= 1
    assert again["metrics"]["mse"] == pytest.approx(r.metrics["mse"])
    saved = json.loads((r_dir / "model.json").read_text())
    assert saved["identity"]["model"] == model and not list(r_dir.glob("*.pt"))
    assert (tmp_path / "results.csv").read_text().count(model) == 1
