from __future__ import annotations

import os
import subprocess
import sys

import dask
import pytest

from sfrdask import config
from sfrdask.clusters import cluster as sfrdask_cluster


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
    code = "from sfrdask.synthetic import SynthParams as p; print(p().flag0_fraction)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.3"


def test_local_cluster_workers_get_the_configured_environment(client):
    """Even after another cluster (the session fixture) left Dask's default in this process."""
    from sfrdask.clusters import cluster

    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"  # as a default LocalCluster's nanny leaves it
    with cluster("local", n_workers=1) as client:
        env = client.run(
            lambda: [os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")]
        )
        # a loaded node keeps its workers: heartbeats and connections as patient as configured
        timeouts = client.run(
            lambda: [dask.config.get(f"distributed.comm.timeouts.{k}") for k in ("connect", "tcp")]
        )
        ttl = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.worker_ttl)
    assert list(env.values()) == [["67108864", "33554432"]]  # glibc's mmap threshold fixed at 32 MiB
    assert list(timeouts.values()) == [["60s", "120s"]] and ttl == 600
    # None leaves the variable unset in the workers (glibc's dynamic thresholds), from process start
    with (
        dask.config.set({"sfrdask.cluster.worker-env.MALLOC_TRIM_THRESHOLD_": None}),
        cluster("local", n_workers=1) as client,
    ):
        start_env = client.run(lambda: open(f"/proc/{os.getpid()}/environ", "rb").read())
    assert b"MALLOC_TRIM_THRESHOLD_" not in next(iter(start_env.values()))
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's own value is restored


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


def test_an_unreachable_scheduler_is_a_clear_error_not_a_hang():
    import time

    from sfrdask.errors import SfrdaskError

    t0 = time.monotonic()
    with (
        dask.config.set({"sfrdask.cluster.connect-timeout": 2}),
        pytest.raises(SfrdaskError, match=r"could not reach the Dask scheduler at tcp://127\.0\.0\.1:9"),
        sfrdask_cluster("tcp://127.0.0.1:9"),
    ):
        pass
    assert time.monotonic() - t0 < 15


def test_a_task_whose_workers_keep_dying_ends_the_cli_with_one_line(tmp_path):
    """What a walltime too short for a stage looks like to the scheduler: the task's worker dies,
    again and again; Dask gives up after allowed-failures and the CLI says so in one line."""
    code = (
        "import os, sys, dask\n"
        "from distributed import Client, LocalCluster\n"
        "from sfrdask import cli\n"
        "def die(): os._exit(1)\n"
        "def run_stage(args):\n"
        "    with LocalCluster(n_workers=1, threads_per_worker=1) as lc, Client(lc) as c:\n"
        "        c.submit(die, pure=False).result()\n"
        "if __name__ == '__main__':\n"
        "    dask.config.set({'distributed.scheduler.allowed-failures': 0})\n"
        "    cli._run_stage = run_stage\n"
        "    sys.exit(cli.main(['models']))\n"
    )
    script = tmp_path / "die.py"
    script.write_text(code)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "died 1 times" in p.stderr and "walltime" in p.stderr and "Traceback (most recent" not in p.stderr


def test_slurm_jobs_export_the_worker_environment_and_timeouts():
    from sfrdask.clusters import slurm_options

    with dask.config.set({"sfrdask.cluster.timeouts.tcp": "300s"}):
        kwargs, _ = slurm_options(security=False, job_script_prologue=["module load python"])
    prologue = kwargs["job_script_prologue"]
    assert "export MALLOC_TRIM_THRESHOLD_=67108864" in prologue
    assert "export MALLOC_MMAP_THRESHOLD_=33554432" in prologue
    assert 'export DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP="300s"' in prologue
    assert 'export DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="10 minutes"' in prologue
    assert prologue[-1] == "module load python"  # the user's lines run after sfrdask's
    code = "import dask, distributed; print(dask.config.get('distributed.scheduler.worker-ttl'))"
    out = subprocess.run(  # what a worker job's Dask makes of those variables
        [sys.executable, "-c", code],
        env=dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="10 minutes"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "10 minutes"
