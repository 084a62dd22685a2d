"""The Python API: one function per stage, built from the stage's Params, on the caller's client."""

from __future__ import annotations

import inspect

import pytest

import sfrdask
from sfrdask import api
from sfrdask.errors import SfrdaskError
from sfrdask.stages import get_stage, names
from sfrdask.stages.base import fields_of


def test_every_stage_with_a_cluster_has_a_function_whose_signature_is_its_params():
    for name in names():
        stage = get_stage(name)
        if not stage.uses_cluster:
            continue
        fn = getattr(api, name.replace("-", "_"))
        params = list(inspect.signature(fn).parameters)
        assert params == [f.name for f, _ in fields_of(stage.params)] + ["client"], name


def test_an_unknown_argument_is_refused_with_the_parameters_named():
    with pytest.raises(TypeError, match=r"parameters: .*objects"):
        sfrdask.synth("out", objecs=10)


def test_a_missing_input_is_refused_by_name_before_anything_runs(tmp_path):
    """The check the command line makes (stages.base.check_inputs), not the reader's own error."""
    with pytest.raises(SfrdaskError, match=r"^cube: .*no-such\.h5: no such file or directory \("):
        sfrdask.ingest(tmp_path / "no-such.h5", out=tmp_path / "s.zarr", client="synchronous")
    assert not (tmp_path / "s.zarr").exists()


def test_a_stage_runs_on_the_client_it_is_handed(tmp_path):
    r = sfrdask.synth(tmp_path / "survey", objects=64, seed=3, client="synchronous")
    assert r.cube.exists()
