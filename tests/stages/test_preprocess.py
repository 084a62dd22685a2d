"""The preprocess stage: filter, stats, deblend and PCA in one, each given the settings that its
own stage would take."""

from __future__ import annotations

import dataclasses

import numpy as np

from sfrdask.preprocessing.quality import selected_objects
from sfrdask.stages import deblend, filter, ingest, pca, preprocess, stats
from sfrdask.stages.base import execute, fields_of


def test_every_sub_stage_setting_is_a_preprocess_field():
    """A setting added to a sub-stage but not here would silently keep its default in preprocess."""
    mine = {f.name for f in dataclasses.fields(preprocess.Params)}
    for sub in (filter, stats, deblend, pca):
        settings = {f.name for f, _ in fields_of(sub.Params) if "setting" in f.metadata}
        assert settings <= mine, (sub.__name__, settings - mine)


def test_preprocess_does_what_the_stages_do_one_by_one(staged, cube, survey_dir, tmp_path):
    store = tmp_path / "s.zarr"
    made = ingest.Params(cube, store, catalog=survey_dir, image_zooms=(3,), spectrum_zooms=(3,))
    execute(ingest.STAGE, made, "synchronous")
    params = preprocess.Params(store, classes=("GALAXY",), image_components=8, spectrum_components=8)
    r = execute(preprocess.STAGE, params, "synchronous")
    by_class = r.filter.counts["selected_by_class"]
    assert by_class["GALAXY"] > 0 and by_class.get("QSO", 0) == 0  # a setting given reaches its stage
    galaxies = np.asarray(selected_objects(store))
    assert set(galaxies) < set(selected_objects(staged["store"]))
    assert list(r.deblend.groups) == [3] and set(r.pca.groups) == {"image/3", "spectrum/3"}
    assert r.stats.table.loc["all", "count"] == galaxies.size
