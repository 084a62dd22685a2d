"""The ingest stage: every target of the cube in the store, with its catalogue labels."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from sfrdask.io.atomic import OutputExistsError
from sfrdask.io.store import open_store
from sfrdask.stages import ingest
from sfrdask.stages.base import execute


def test_every_target_is_stored_with_its_label(staged, cube, survey_dir):
    with h5py.File(cube, "r") as f:  # the cube's own count, read without sfrdask
        targets = int(f["dense_cube"].attrs["target_count"])
    ds = open_store(staged["store"], image_zoom=3, spectrum_zoom=3)
    assert ds.sizes["object"] == targets and ds.image.shape[1:] == (5, 8, 8) and ds.spectrum.shape[1] == 577
    truth = pd.read_csv(survey_dir / "truth_objects.csv")  # the survey's ground truth, not the join
    labelled = (truth["FLAG"] == 0).to_numpy()
    np.testing.assert_array_equal(ds["FLAG"].values == 0, labelled)
    np.testing.assert_allclose(
        ds["AVG"].values[labelled], truth["AVG"].to_numpy()[labelled], rtol=1e-6, atol=0
    )
    assert staged["ingest"].megabytes > 0


def test_an_existing_store_is_refused_before_any_work(staged, cube):
    with pytest.raises(OutputExistsError, match="--overwrite"):
        execute(ingest.STAGE, ingest.Params(cube, staged["store"]), "synchronous")
