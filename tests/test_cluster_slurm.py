"""sfrdask.cluster("slurm") against the real local SLURM (deploy/local/slurm.sh start).

In CI (SFRDASK_REQUIRE_SLURM=1) a missing SLURM fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

import sfrdask
from sfrdask import read_catalog_dir, write_store
from sfrdask.errors import SfrdaskError
from sfrdask.preprocessing import deblend_store, select_objects
from tests.conftest import on

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm():
    ok = shutil.which("sbatch") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    if not ok:
        msg = "no running SLURM (start one with: deploy/local/slurm.sh start)"
        if os.environ.get("SFRDASK_REQUIRE_SLURM"):
            pytest.fail(msg)
        pytest.skip(msg)


def _opts(tmp_path, **kw):
    base = dict(
        memory="2GB",
        walltime="00:20:00",
        shared_temp_directory=str(tmp_path / "tls"),
        log_directory=str(tmp_path / "logs"),
        start_timeout=120,
    )
    return {**base, **kw}


def _jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if "dask-wor" in line]


@pytest.fixture(scope="module")
def small_store(cube, survey_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("slurm") / "s.zarr"
    with dask.config.set(scheduler="threads"):
        write_store(cube, out, catalog=read_catalog_dir(survey_dir), image_zooms=(2,), spectrum_zooms=(3,))
        select_objects(out)
    return out


def test_slurm_cluster_runs_a_stage_like_a_local_cluster(slurm, small_store, tmp_path, client):
    local = tmp_path / "local.zarr"
    remote = tmp_path / "slurm.zarr"
    shutil.copytree(small_store, local)
    shutil.copytree(small_store, remote)
    with on(client):
        deblend_store(local, 2)  # on the LocalCluster of the `client` fixture
    with sfrdask.cluster("slurm", **_opts(tmp_path, jobs=2)) as c, on(c):
        c.wait_for_workers(2, timeout=120)
        assert len(_jobs()) >= 2  # two worker jobs really went through sbatch
        assert c.scheduler.address.startswith("tls://")
        deblend_store(remote, 2)
    a = xr.open_zarr(local, group="clean/2", zarr_format=3, consolidated=False)
    b = xr.open_zarr(remote, group="clean/2", zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(a.image.values, b.image.values)
    np.testing.assert_array_equal(a.mask.values, b.mask.values)


def _try_client(address: str, security: str = "None") -> str:
    """Connect a Client from a separate process and run one task; its output, or "timed out". A
    hung handshake is bounded by the subprocess timeout (one CI run once waited minutes in-process)."""
    code = (
        "from distributed import Client\n"
        "from distributed.security import Security\n"
        f"c = Client({address!r}, security={security}, timeout='5s')\n"
        "print('CONNECTED', c.submit(sum, [1, 2]).result())\n"
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "timed out"
    return r.stdout + r.stderr


def test_tls_refuses_clients_without_the_credentials(slurm, tmp_path):
    with sfrdask.cluster("slurm", **_opts(tmp_path, jobs=1)) as c:
        address = c.scheduler.address
        assert address.startswith("tls://")
        for addr, security in (
            (address.replace("tls://", "tcp://"), "None"),  # plain TCP
            (address, "None"),  # TLS scheme, no credentials
            (address, "Security.temporary()"),  # someone else's CA
        ):
            assert "CONNECTED" not in _try_client(addr, security)
        assert c.submit(sum, [1, 2]).result() == 3  # while the cluster's own client works
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=":0") as open_cluster:
        assert "CONNECTED 3" in _try_client(open_cluster.scheduler_address)  # the probe does see a connection


def test_dashboard_answers_during_a_computation(slurm, tmp_path, capsys):
    with sfrdask.cluster("slurm", **_opts(tmp_path, jobs=1)) as c:
        printed = capsys.readouterr().out
        link = next(w for w in printed.split() if w.startswith("http://") and w.endswith("/status"))
        assert c.dashboard_link == link and link.startswith("http://127.0.0.1:")  # where it listens
        futs = c.map(time.sleep, [0.5] * 8, pure=False)
        with urllib.request.urlopen(link, timeout=10) as r:
            assert r.status == 200 and b"Dask" in r.read()
        c.gather(futs)
    assert "ssh -N -L" in printed


def _cancel_a_busy_job_during(c, fn) -> str:
    """Run ``fn()`` in a thread; scancel the SLURM job of the first worker seen running one of its
    tasks; wait for ``fn`` to finish. Returns the cancelled job id."""
    done = {}

    def target():
        fn()
        done["ok"] = True

    t = threading.Thread(target=target)
    t.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and t.is_alive():
        busy = [w for w, tasks in c.processing().items() if tasks]
        if busy:
            name = c.scheduler_info()["workers"][busy[-1]]["name"]
            victim = c.cluster.workers[name].job_id
        time.sleep(0.02)
    assert victim is not None, "the stage never ran a task"
    subprocess.run(["scancel", victim], check=True)
    t.join(timeout=240)
    assert done.get("ok"), "the stage did not complete after its worker's job was cancelled"
    assert victim not in _jobs()
    return victim


def test_a_worker_job_cancelled_mid_stage_changes_nothing(slurm, cube, survey_dir, tmp_path):
    """scancel a busy worker's job during ingest, then during deblending, then during PCA: each stage
    completes and its output equals a clean run's."""
    from sfrdask.preprocessing import fit_pca_store

    cat = read_catalog_dir(survey_dir)
    ref, run = tmp_path / "ref.zarr", tmp_path / "run.zarr"
    with dask.config.set({"scheduler": "threads", "sfrdask.store.chunk-mb": 1}):
        write_store(cube, ref, catalog=cat, image_zooms=(0, 1), spectrum_zooms=(0,))
        select_objects(ref)
        deblend_store(ref, 0)
        fit_pca_store(ref, "image", 1, n_components=8, progress=False)
    adapt = {"minimum-jobs": 2, "maximum-jobs": 2}
    with (
        dask.config.set({"sfrdask.store.chunk-mb": 1}),
        sfrdask.cluster("slurm", **_opts(tmp_path, adapt=adapt)) as c,
        on(c),
    ):
        c.wait_for_workers(2, timeout=120)
        _cancel_a_busy_job_during(
            c, lambda: write_store(cube, run, catalog=cat, image_zooms=(0, 1), spectrum_zooms=(0,), client=c)
        )
        select_objects(run)
        c.wait_for_workers(2, timeout=120)
        _cancel_a_busy_job_during(c, lambda: deblend_store(run, 0))
        c.wait_for_workers(2, timeout=120)
        _cancel_a_busy_job_during(c, lambda: fit_pca_store(run, "image", 1, n_components=8, progress=False))
    a = zarr.open_group(ref, mode="r")
    b = zarr.open_group(run, mode="r")
    for path in ("image/0/image", "image/1/image_error", "spectrum/0/spectrum", "AVG", "clean/0/image",
                 "pca/image/1/features"):  # fmt: skip
        np.testing.assert_array_equal(a[path][:], b[path][:], err_msg=path)


def test_no_sbatch_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SfrdaskError, match="needs SLURM's sbatch"), sfrdask.cluster("slurm"):
        pass


def test_the_batch_script_runs_a_tiny_pipeline_under_slurm(slurm, tmp_path):
    """deploy/slurm/run.sbatch as a driver job; its worker job(s) submitted by dask-jobqueue, TLS on."""
    root = Path(__file__).resolve().parents[1]
    run = {
        "run-dir": str(tmp_path / "run"),
        "input": {"synthetic": {"objects": 64, "seed": 9, "flag0-fraction": 0.55}},
        "zooms": {"image": [3], "spectrum": [3]},
        "train": {"models": ["tree-both"], "image-zoom": 3, "spectrum-zoom": 3},
        "cluster": {
            "kind": "slurm",
            # no log-directory: the worker jobs' logs go under the run directory
            "slurm": {k.replace("_", "-"): v for k, v in _opts(tmp_path, jobs=1).items() if "log" not in k},
        },
        "settings": {"preprocess": {"pca": {"image-components": 6, "spectrum-components": 6}}},
    }
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(run))
    env = dict(os.environ, SFRDASK=str(Path(sys.executable).with_name("sfrdask")))
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--mem=2G",
            f"--output={tmp_path}/driver-%j.out",
            str(root / "deploy/slurm/run.sbatch"),
            str(cfg),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    job = out.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        state = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        if "JobState=COMPLETED" in state or "JobState=FAILED" in state or "JobState=CANCELLED" in state:
            break
        time.sleep(2)
    log = (tmp_path / f"driver-{job}.out").read_text()
    assert "JobState=COMPLETED" in state, log[-3000:]
    assert "sfrdask run finished" in log and "tls://" in log
    for stage in ("synth", "ingest", "preprocess", "train"):
        assert (tmp_path / "run" / "stages" / f"{stage}.json").exists(), stage
    assert (tmp_path / "run" / "reports" / "preprocess.html").stat().st_size > 0
    assert "tree-both" in (tmp_path / "run" / "runs" / "results.md").read_text()
    # every log named in run.log; the workers' in the run directory, without shutdown tracebacks
    run_log = (tmp_path / "run" / "run.log").read_text()
    logs = (tmp_path / "run" / "logs").resolve()
    assert f"worker jobs' stdout/stderr: {logs}" in run_log and f"driver job {job}" in run_log
    assert "Dask dashboard: http://127.0.0.1:" in run_log and "ssh -N -L" in run_log
    errs = sorted(logs.glob("dask-worker-*.err"))
    assert errs, sorted(logs.iterdir()) if logs.exists() else "no logs directory"
    for err in errs:
        assert "Traceback" not in err.read_text(), err.read_text()[-2000:]


def test_a_worker_job_slurm_refuses_fails_the_run_at_once_in_sbatchs_words(slurm, tmp_path):
    """A GPU request on this CPU-only SLURM: the run fails in seconds (not after the start timeout)
    with sbatch's own error line, in the message and in run.log, and queues no job."""
    slurm = {k.replace("_", "-"): v for k, v in _opts(tmp_path, jobs=1).items()}
    slurm |= {"job-extra-directives": ["--gres=gpu:1"], "start-timeout": 600}
    run = {"run-dir": str(tmp_path / "run"), "input": {"synthetic": {"objects": 64, "seed": 9}},
           "zooms": {"image": [3], "spectrum": [3]}, "stages": ["synth"],
           "cluster": {"kind": "slurm", "slurm": slurm}}  # fmt: skip
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(run))
    before = _jobs()
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "sfrdask", "run", str(cfg)], capture_output=True, text=True, timeout=300
    )
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    assert took < 30, took
    assert "Invalid generic resource (gres) specification" in r.stderr and "Traceback" not in r.stderr
    assert "Invalid generic resource (gres) specification" in (tmp_path / "run" / "run.log").read_text()
    assert _jobs() == before


def test_the_shipped_study_script_runs_a_small_study_on_cpu_workers(slurm, cube, survey_dir, tmp_path):
    """deploy/slurm/study.sbatch with deploy/slurm/sfrdask-study.yaml as shipped, its EDIT lines set
    for this one-node CPU-only SLURM and the study made small: the driver job completes the study."""
    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "deploy/slurm/sfrdask-study.yaml").read_text())
    cfg["run-dir"] = str(tmp_path / "run")  # EDIT lines
    cfg["input"] = {"cube": str(cube), "catalog": str(survey_dir)}
    cfg["cluster"]["slurm"] |= {"job-script-prologue": [], "local-directory": None, "memory": "2GB",
                                "walltime": "00:20:00", "jobs": 1,
                                "shared-temp-directory": str(tmp_path / "tls")}  # fmt: skip
    cfg["study"] |= {"models": ["gbt-spectrum", "early-fusion"], "image-zooms": [3], "spectrum-zooms": [3],
                     "seeds": [0, 1], "epochs": 2, "batch-size": 16, "tune-trials": 1, "tune-epochs": 2,
                     "control": "", "curves": False}  # fmt: skip  # small
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, SFRDASK=str(Path(sys.executable).with_name("sfrdask")))
    out = subprocess.run(["sbatch", "--parsable", "--mem=3G", f"--output={tmp_path}/study-%j.out",
                          str(root / "deploy/slurm/study.sbatch"), str(path)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
    job = out.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 500
    while time.monotonic() < deadline:
        state = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        if any(f"JobState={s}" in state for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")):
            break
        time.sleep(2)
    log = (tmp_path / f"study-{job}.out").read_text()
    assert "JobState=COMPLETED" in state, log[-3000:]
    assert "sfrdask study finished" in log
    text = (tmp_path / "run" / "study" / "study.md").read_text()
    assert "## Recommendation" in text and "early-fusion 8 px / 577" in text
    assert (
        f"driver job {job}: its output: {tmp_path}/study-{job}.out"
        in (tmp_path / "run" / "run.log").read_text()
    )
