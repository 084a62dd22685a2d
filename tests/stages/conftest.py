"""Fixtures of the stage tests: the tiny session survey through the preprocessing stages
(``staged``), and a small survey with a trained tree, network and physics model for the predict
stage (``trained``: 700 objects, 60% labelled, so that the validation split can calibrate)."""

from __future__ import annotations

from pathlib import Path

import dask
import pytest
import torch  # noqa: F401  (first: see below)

from sfrdask import read_catalog_dir, stages, write_store
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects
from sfrdask.stages import deblend, filter, ingest, pca
from sfrdask.stages.base import execute
from sfrdask.synthetic import SynthParams, make_survey
from sfrdask.trained.modelling import train

# torch is imported before scikit-learn (which sfrdask.preprocessing loads), as the stage tests did
# before the modules moved: each brings its own OpenMP runtime, and with scikit-learn's loaded first
# the study's tree fits after its networks ran ~15 times slower in this process (the study test:
# 17 s -> 34 s on 2 cores). The order of the two runtimes, not sfrdask's code, made the difference.
MODELS = ("gbt-both", "spectrum-mlp", "physics-halpha")


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths: ``survey`` (cube + catalogue + truth), ``store`` and one run directory per model."""
    root = tmp_path_factory.mktemp("predict")
    survey = root / "survey"
    with dask.config.set({"scheduler": "threads", "sfrdask.store.chunk-mb": 1}):
        make_survey(survey, objects=700, seed=7, params=SynthParams(flag0_fraction=0.6), progress=False)
        store = root / "store.zarr"
        write_store(
            survey / "survey.h5", store, read_catalog_dir(survey), image_zooms=(3,), spectrum_zooms=(3,)
        )
        select_objects(store)
        deblend_store(store, 3)
        fit_pca_store(store, "image", 3, n_components=12, progress=False)
        fit_pca_store(store, "spectrum", 3, n_components=12, progress=False)
        paths = {"survey": survey, "cube": survey / "survey.h5", "store": store, "runs": root / "runs"}
        for m in MODELS:
            r = train(store, m, 3, 3, out=root / "runs", epochs=4, batch_size=32, progress=False)
            paths[m] = Path(r.run_dir)
    return paths


@pytest.fixture(scope="package")
def staged(cube: Path, survey_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny session survey through the stages, in order, with every stage's Result:
    ``ingest`` (8 px / 577 samples), ``filter``, ``deblend``, ``pca``; and the ``store``."""
    store = tmp_path_factory.mktemp("stages") / "s.zarr"
    out: dict = {"store": store}
    steps = [
        ("ingest", ingest.Params(cube, store, catalog=survey_dir, image_zooms=(3,), spectrum_zooms=(3,))),
        ("filter", filter.Params(store)),
        ("deblend", deblend.Params(store)),
        ("pca", pca.Params(store, image_components=8, spectrum_components=8)),
    ]
    for name, params in steps:
        out[name] = execute(getattr(stages, name).STAGE, params, "synchronous")
    return out
