from __future__ import annotations

import os
import subprocess
import sys

import dask
import pytest

from sfrdask import config


def test_defaults_are_in_dask_config():
    assert config.get("synth.seed") == 42
    assert dask.config.get("sfrdask.cluster.local.threads-per-worker") == 1


def test_dask_config_set_overrides():
    with dask.config.set({"sfrdask.synth.objects": 17}):
        assert config.get("synth.objects") == 17
    assert config.get("synth.objects") == 3000


def test_environment_variable_overrides():
    env = dict(os.environ, DASK_SFRDASK__SYNTH__SEED="7")
    out = subprocess.run(
        [sys.executable, "-c", "import sfrdask; print(sfrdask.config.get('synth.seed'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "7"


def test_underscored_environment_variable_reaches_hyphenated_key():
    """DASK_..._COLLECTIVE_TIMEOUT arrives as collective_timeout; sections read it as collective-timeout."""
    env = dict(os.environ, DASK_SFRDASK__TRAIN__DDP__COLLECTIVE_TIMEOUT="5")
    code = "import sfrdask; d = sfrdask.config.get('train.ddp'); print(d['collective-timeout'], d['timeout'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "7200"]
    env = dict(os.environ, DASK_SFRDASK__SYNTH__FLAG0_FRACTION="0.3")
    code = "from sfrdask.synth.survey import params_from_config as p; print(p().flag0_fraction)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.3"


def test_local_cluster_workers_get_the_configured_environment(client):
    """Even after another cluster (the session fixture) left Dask's default in this process."""
    from sfrdask.cluster import cluster

    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"  # as a default LocalCluster's nanny leaves it
    with cluster("local", n_workers=1) as client:
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(env.values()) == ["67108864"]


def test_unknown_keys_and_wrong_types_are_refused_by_name():

    from sfrdask.config import ConfigError, validate

    validate()  # the shipped defaults are valid
    with (
        dask.config.set({"sfrdask.cluster.slurm.coers": 4}),
        pytest.raises(ConfigError, match=r"slurm\.coers"),
    ):
        validate()
    with (
        dask.config.set({"sfrdask.train.epochs": "many"}),
        pytest.raises(ConfigError, match=r"train\.epochs"),
    ):
        validate()
    with dask.config.set({"sfrdask.cluster.worker-env": {"OMP_NUM_THREADS": "1"}}):
        validate()  # worker-env is the user's own mapping


def test_the_cli_refuses_a_bad_setting_with_one_line():
    env = dict(os.environ, DASK_SFRDASK__TRAIN__EPOCHZ="3")
    p = subprocess.run([sys.executable, "-m", "sfrdask", "models"], env=env, capture_output=True, text=True)
    assert p.returncode == 2
    assert "unknown setting sfrdask.train.epochz" in p.stderr and "Traceback" not in p.stderr
