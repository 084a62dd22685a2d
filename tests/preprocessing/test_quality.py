from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sfrdask import open_store, read_catalog_dir, write_store
from sfrdask.errors import SfrdaskError, StoreError
from sfrdask.io.store import open_group
from sfrdask.preprocessing import label_statistics, select_objects
from sfrdask.preprocessing.quality import fill_nan, selected_objects


def test_selection_follows_flag_class_and_bad_pixels(store, survey_dir):
    truth = pd.read_csv(survey_dir / "truth_objects.csv")
    sel = open_group(store, "selection")
    bad = sel["bad_fraction"].values
    expected = ((truth["FLAG"] == 0) & truth["class"].isin(["GALAXY", "QSO"])).to_numpy() & (bad <= 0.05)
    np.testing.assert_array_equal(sel["selected"].values, expected)
    counts = json.loads(sel.attrs["counts"])
    assert counts["selected"] == expected.sum() > 20
    assert sum(counts["selected_by_class"].values()) == counts["selected"]
    assert sum(counts["split"].values()) == counts["selected"]
    assert (sel["split"].values[~expected] == -1).all()


def test_bad_pixel_threshold_drops_and_counts(store, tmp_path):
    sel0 = select_objects(store, max_bad_fraction=0.0)
    bad = sel0["bad_fraction"].values
    counts = json.loads(sel0.attrs["counts"])
    flag_ok_bad = int(((open_store(store, None, None)["FLAG"].values == 0) & (bad > 0)).sum())
    assert counts["dropped_bad_pixels"] == flag_ok_bad > 0
    assert not (sel0["selected"].values & (bad > 0)).any()
    select_objects(store)  # restore the default selection for the other tests


def test_empty_selection_is_a_clear_error(store):
    with pytest.raises(SfrdaskError, match="no object passes the selection"):
        select_objects(store, flag=99)
    assert open_group(store, "selection")["selected"].values.any(), "a failed stage leaves the old group"


def test_store_without_labels(cube, tmp_path):
    out = write_store(cube, tmp_path / "nolabels.zarr", image_zooms=(3,), spectrum_zooms=())
    with pytest.raises(SfrdaskError, match="ingest the cube with --catalog"):
        select_objects(out)


def test_stage_input_missing(cube, survey_dir, tmp_path):
    out = write_store(
        cube,
        tmp_path / "nosel.zarr",
        catalog=read_catalog_dir(survey_dir),
        image_zooms=(3,),
        spectrum_zooms=(),
    )
    with pytest.raises(StoreError, match="run `sfrdask filter`"):
        selected_objects(out)


def test_label_statistics(store):
    table = label_statistics(store)
    root = open_store(store, None, None)
    idx = selected_objects(store)
    y = root["AVG"].values[idx]
    assert table.loc["all", "count"] == idx.size
    assert table.loc["all", "mean"] == pytest.approx(y.mean())
    assert table.loc["all", "median"] == pytest.approx(np.median(y))
    assert table.loc["GALAXY", "count"] + table.loc["QSO", "count"] == idx.size
    assert np.isfinite(table.loc[table["count"] > 2, "skewness"]).all()
    assert table.loc[table["count"] <= 2, "skewness"].isna().all()  # undefined, not invented


def test_fill_nan():
    x = np.array([1.0, np.nan, 3.0])
    filled, mask = fill_nan(x)
    np.testing.assert_array_equal(filled, [1, 0, 3])
    np.testing.assert_array_equal(mask, [False, True, False])
