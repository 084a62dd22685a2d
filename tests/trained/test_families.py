"""The model families: one per registered model, their model files, and a tree read back whole."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from sfrdask.errors import SfrdaskError
from sfrdask.models import MODELS
from sfrdask.models.registry import FAMILY_TRAITS
from sfrdask.models.trees import TreeArrays
from sfrdask.trained import families
from sfrdask.trained.families import FAMILIES, Family, TrainedRun, family_of


def test_every_registered_model_has_a_family_and_the_registry_names_its_file():
    for spec in MODELS.list():
        assert spec.family in FAMILIES, spec.name
    assert FAMILIES.keys() == FAMILY_TRAITS.keys()


def test_an_unknown_family_is_refused_by_name():
    with pytest.raises(SfrdaskError, match="tree, net, physics"):
        family_of("forest")


def test_a_saved_tree_loads_back_and_predicts_as_the_estimator(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = x[:, 0] - 2 * x[:, 1] + rng.normal(0, 0.1, 300)
    est = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, y)
    identity = {"model": "gbt-both", "image_zoom": 2, "spectrum_zoom": 2, "target": "AVG", "shapes": {}}
    path = tmp_path / FAMILY_TRAITS["tree"].model_file
    TreeArrays.from_estimator(est).save(path, identity=json.dumps(identity), norm_target_mean=np.float64(1.5))
    loaded = family_of("tree").load(path)
    assert loaded.identity == identity
    assert loaded.normaliser.stats["target_mean"] == 1.5
    run = TrainedRun(path.parent, "tree", loaded.identity, loaded.options, loaded.normaliser, loaded.weights)
    model = family_of("tree").build(run)
    np.testing.assert_allclose(model.predict(x), est.predict(x), rtol=1e-9, atol=0)


def test_every_family_operation_has_its_protocol_signature():
    """A family's functions take what the protocol names, in its order (a new family written
    against another signature fails here, not in the middle of a prediction)."""
    for family in FAMILIES.values():
        for f in dataclasses.fields(Family):
            if not hasattr(families, f.type):  # the name and plain settings, not operations
                continue
            protocol = getattr(families, f.type)
            want = list(inspect.signature(protocol.__call__).parameters)[1:]  # without self
            got = list(inspect.signature(getattr(family, f.name)).parameters)
            assert got == want, (family.name, f.name)
