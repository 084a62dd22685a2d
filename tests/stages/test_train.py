"""The train stage: its settings are TrainSpec's, and it refuses what it cannot train before any work.

Trainings themselves are tested in tests/training/ (one per family, DDP, resume).
"""

from __future__ import annotations

import dataclasses

import pytest

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.models import ModelError
from sfrdask.runtime import Runtime
from sfrdask.stages import train
from sfrdask.stages.base import fields_of
from sfrdask.training.spec import TrainSpec


def test_every_train_setting_is_a_trainspec_field_read_from_the_same_key():
    """One home per default: the stage's settings, TrainSpec's config fields and sfrdask.yaml's
    ``train`` keys name the same things (a setting added in one place only fails here)."""
    stage = {f.name: f.metadata["setting"] for f, _ in fields_of(train.Params) if "setting" in f.metadata}
    defaults = config.defaults()["train"]
    spec = {f.name for f in dataclasses.fields(TrainSpec) if f.name.replace("_", "-") in defaults}
    assert set(stage) == spec
    assert all(key == f"train.{name.replace('_', '-')}" for name, key in stage.items())
    made = TrainSpec.from_config("s.zarr", "gbt-both", **{n: getattr(train.Params("s.zarr", ("gbt-both",)), n)
                                                          for n in stage})  # fmt: skip
    assert made == TrainSpec.from_config("s.zarr", "gbt-both")


def test_an_unknown_model_is_refused_before_any_training(tmp_path):
    with pytest.raises(ModelError, match="no-such-net"):
        train.run(
            Runtime.of("synchronous"), train.Params(tmp_path / "missing.zarr", ("gbt-both", "no-such-net"))
        )


def test_ranks_ask_for_a_worker_per_rank_and_none_for_a_cluster():
    assert train.cluster_overrides(train.Params("s.zarr", ("early-fusion",)), "local") is None
    with_ranks = train.Params("s.zarr", ("early-fusion",), ranks=3)
    assert train.cluster_overrides(with_ranks, "local")["n_workers"] >= 3
    assert train.cluster_overrides(with_ranks, "slurm")["jobs"] >= 3


def test_an_unknown_lr_schedule_is_refused_by_name():
    with pytest.raises(SfrdaskError, match="lr-schedule 'sometimes'"):
        TrainSpec.from_config("s.zarr", "image-cnn", lr_schedule="sometimes")
