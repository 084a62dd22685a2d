"""The synth stage: a synthetic survey of the asked size, its counts as the truth table has them."""

from __future__ import annotations

import pandas as pd
import pytest

from sfrdask.io.atomic import OutputExistsError
from sfrdask.stages import synth
from sfrdask.stages.base import execute


def test_a_survey_of_the_asked_size_and_its_counts(tmp_path):
    r = execute(synth.STAGE, synth.Params(tmp_path / "s", objects=24, seed=3), "synchronous")
    truth = pd.read_csv(tmp_path / "s" / "truth_objects.csv")
    assert r.objects == len(truth) == 24 and r.cube.exists()
    assert r.flag0_objects == int((truth["FLAG"] == 0).sum()) and r.spectra >= 24
    with pytest.raises(OutputExistsError, match="--overwrite"):  # refused before any work
        execute(synth.STAGE, synth.Params(tmp_path / "s", objects=24, seed=3), "synchronous")
