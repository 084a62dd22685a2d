"""A new model family in one module and one table row each: a ridge regression on the PCA features,
defined here alone, trains, predicts a catalogue, runs as a study training and is refused by
explain by its traits, with no other file of sfrdask touched (issue 36: families by their fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge

import sfrdask
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text
from sfrdask.io.sfr_catalogue import read_catalogue
from sfrdask.models import MODELS
from sfrdask.models.registry import FAMILY_TRAITS, Traits
from sfrdask.resolution import grid
from sfrdask.resolution.grid import Training
from sfrdask.resolution.task import run_training
from sfrdask.resolution.tune import tunable
from sfrdask.trained.families import FAMILIES, Family, Loaded, TrainedRun
from sfrdask.training.data import Normaliser, StoreDataset
from sfrdask.training.loop import split_result, write_outputs
from sfrdask.training.result import FitResult
from sfrdask.training.spec import TrainSpec, as_matrix, load_splits

pytestmark = pytest.mark.slow


# -- the family's module: its model, its five operations ----------------------------------------
class Linear:
    """The fitted ridge as plain arrays, in the estimator's own dtype (float32 features give float32
    sums), so predictions read back equal the estimator's."""

    def __init__(self, coef: list[float], intercept: float, dtype: str):
        self.coef, self.intercept = np.asarray(coef, dtype), np.asarray(intercept, dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept


def build(shapes: dict[str, tuple[int, ...]], alpha: float = 1.0) -> Ridge:
    return Ridge(alpha=alpha)


def fit(spec: TrainSpec, ranks: int | None, client: Any) -> FitResult:
    data = load_splits(spec)
    x = {s: as_matrix(data[s].arrays(), spec.inputs) for s in ("train", "validation", "test")}
    est = spec.model_spec.build(data.shapes, **spec.options).fit(x["train"], data.train.y)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    saved = {"identity": spec.identity(data.shapes), "coef": est.coef_.tolist(),
             "intercept": float(est.intercept_), "dtype": str(est.coef_.dtype),
             "normaliser": {k: np.asarray(v).tolist() for k, v in data.normaliser.stats.items()}}  # fmt: skip
    write_text(spec.run_dir / "ridge.json", json.dumps(saved))
    result = split_result(spec, data, est.predict(x["test"]), est.predict(x["validation"]), 1.0)
    write_outputs(spec, result)
    return result


def load(path: Path) -> Loaded:
    saved = json.loads(path.read_text())
    norm = Normaliser({k: np.asarray(v) for k, v in saved["normaliser"].items()})
    return Loaded(saved["identity"], {}, norm, Linear(saved["coef"], saved["intercept"], saved["dtype"]))


def build_run(run: TrainedRun) -> Linear:
    return run.weights


def predict(run: TrainedRun, model: Any, inputs: dict, raw: dict, clean: Any) -> np.ndarray:
    return model.predict(as_matrix(inputs, run.inputs))


def predict_split(spec: TrainSpec, run: TrainedRun, model: Any, ds: StoreDataset) -> np.ndarray:
    return model.predict(as_matrix(ds.arrays(), spec.inputs))


@pytest.fixture
def ridge(monkeypatch):
    """The family's table rows (traits; operations) and its model, registered for this test only."""
    tables = {"traits": FAMILY_TRAITS, "families": FAMILIES, "models": MODELS._models}
    before = {k: set(t) for k, t in tables.items()}
    monkeypatch.setitem(FAMILY_TRAITS, "ridge", Traits("ridge.json"))
    monkeypatch.setitem(FAMILIES, "ridge", Family("ridge", fit, load, build_run, predict, predict_split))
    monkeypatch.setattr(MODELS, "_models", dict(MODELS._models))
    MODELS.register("ridge-both", "ridge", ("image_pca", "spectrum_pca"), "ridge on PCA features")(build)
    tables["models"] = MODELS._models
    added = {k: set(t) - before[k] for k, t in tables.items()}
    assert added == {"traits": {"ridge"}, "families": {"ridge"}, "models": {"ridge-both"}}  # a row each
    return "ridge-both"


def test_a_family_added_in_one_module_trains_predicts_studies_and_is_refused_by_explain(
    ridge, trained, tmp_path
):
    store = trained["store"]
    r = sfrdask.train(store, ridge, image_zoom=3, spectrum_zoom=3, out=tmp_path / "runs", client="threads")
    (row,) = r.runs
    run_dir = Path(row["run_dir"])
    assert (run_dir / "ridge.json").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["model_file"] == "ridge.json"
    r2 = row["metrics"]["r2"]
    assert r2 > 0.1, r2  # PCA features and the context predict the SFR better than its mean

    # evaluate reads it back through the family and gives the recorded test predictions
    again = sfrdask.evaluate(run_dir, store, client="threads")
    np.testing.assert_allclose(again.metrics["r2"], r2, rtol=1e-9, atol=0)

    cat = sfrdask.predict(run_dir, tmp_path / "sfr.fits", cube=trained["cube"], catalog=trained["survey"],
                          client="threads", plots=False)  # fmt: skip
    table = read_catalogue(cat.catalogue)
    assert len(table) == cat.rows and np.isfinite(table["MEDIAN"].to_numpy(float)).all()

    # the study: not tuned, no other stem, a short training in its order; its task trains it
    assert not tunable(ridge)
    plan = grid.plan([ridge, "intermediate-fusion"], [3], [3], [0], "diagonal")
    assert grid.with_other_stem(plan) == sorted(
        [*plan, Training("intermediate-fusion", 3, 3, 0, stem=grid.OTHER_STEM)], key=lambda t: (-t.cost, t)
    )
    assert plan[-1].model == ridge  # a fit, after the networks
    study_row = run_training(str(store), Training(ridge, 3, 3, 0), str(tmp_path / "study"),
                             {"epochs": 2, "batch_size": 32})  # fmt: skip
    assert study_row["stop"] == "fit" and study_row["r2"] == pytest.approx(r2, rel=1e-9, abs=0)

    with pytest.raises(SfrdaskError, match="explain needs a network"):
        sfrdask.explain(run_dir, store=store, client="threads")
