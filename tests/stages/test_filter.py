"""The filter stage: the selection is FLAG == 0 galaxies and quasars with a label."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sfrdask.preprocessing.quality import selected_objects


def test_the_selection_is_flag0_galaxies_and_quasars(staged, survey_dir):
    truth = pd.read_csv(survey_dir / "truth_objects.csv")
    wanted = np.flatnonzero((truth["FLAG"] == 0) & truth["class"].isin(["GALAXY", "QSO"]))
    got = selected_objects(staged["store"])
    counts = staged["filter"].counts
    assert counts["selected"] == got.size and counts["objects"] == len(truth)
    assert set(got) <= set(wanted)  # nothing else is kept
    assert got.size == wanted.size - counts["dropped_bad_pixels"]  # and only bad pixels drop more
    assert set(counts["selected_by_class"]) <= {"GALAXY", "QSO", "STAR"}
    assert counts["selected_by_class"].get("STAR", 0) == 0
