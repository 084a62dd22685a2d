"""Train, evaluate and calibrate end to end: evaluate's checks (the rest runs in the stage tests)."""

from __future__ import annotations

import pytest

from sfrdask.errors import SfrdaskError
from sfrdask.trained.modelling import evaluate


def test_evaluate_refuses_an_unknown_split_before_reading_anything(tmp_path):
    with pytest.raises(SfrdaskError, match="unknown split 'holdout'"):
        evaluate(tmp_path / "no-run", tmp_path / "no-store", split="holdout")
