"""The evaluate stage: a trained run scored again on its store gives the metrics it was trained with."""

from __future__ import annotations

import pytest

from sfrdask.stages import evaluate
from sfrdask.stages.base import execute
from sfrdask.trained.modelling import train


def test_a_tree_scores_as_at_training(staged, tmp_path):
    fit = train(staged["store"], "gbt-both", 3, 3, out=tmp_path, progress=False)
    r = execute(evaluate.STAGE, evaluate.Params(fit.run_dir, staged["store"]), "synchronous")
    assert (r.model, r.image_zoom, r.spectrum_zoom, r.split) == ("gbt-both", 3, 3, "test")
    assert r.metrics["mse"] == pytest.approx(fit.metrics["mse"], rel=1e-9, abs=0)
    assert len(r.predictions) == fit.n_test
