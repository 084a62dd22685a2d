"""Trained runs read back: where their training store is looked for, and what predicts together."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfrdask.errors import SfrdaskError
from sfrdask.trained.families import TrainedRun
from sfrdask.trained.inference import check_compatible, levels, load_run, training_store
from sfrdask.training.checkpoint import CheckpointError


def test_the_training_store_is_looked_for_where_it_was_recorded_then_beside_the_run(tmp_path):
    run = tmp_path / "runs" / "gbt" / "r"
    metrics = {
        "inputs": {"store": "/data/s.zarr", "store_from_run": "../../../s.zarr"},
        "spec": {"store": "s.zarr"},
    }
    assert training_store(run, metrics) == [Path("/data/s.zarr"), tmp_path / "s.zarr", Path("s.zarr")]
    assert training_store(run, metrics, given="/moved/s.zarr") == [Path("/moved/s.zarr")]
    assert training_store(run, {"spec": {"store": "s.zarr"}}) == [Path("s.zarr")]  # before 0.3


def test_a_directory_without_a_model_names_the_files_it_looked_for(tmp_path):
    with pytest.raises(CheckpointError, match=r"model\.npz, best\.pt, model\.json"):
        load_run(tmp_path)
    with pytest.raises(CheckpointError, match="no such run directory"):
        load_run(tmp_path / "gone")


def _run(path: str, zi: int | None, zs: int | None, target: str = "AVG") -> TrainedRun:
    identity = {"model": "gbt-both", "image_zoom": zi, "spectrum_zoom": zs, "target": target}
    return TrainedRun(Path(path), "tree", identity, store=Path("s.zarr"))


def test_runs_predicted_together_read_the_same_levels_and_target():
    a, b = _run("a", 2, None), _run("b", None, 3)
    assert levels([a, b]) == (2, 3)
    check_compatible([a, b])  # each reads a level the other does not: one source serves both
    with pytest.raises(SfrdaskError, match="image zooms \\[1, 2\\]"):
        check_compatible([a, _run("c", 1, 3)])
    with pytest.raises(SfrdaskError, match="differ in target"):
        check_compatible([a, _run("d", 2, 3, target="MEDIAN")])
