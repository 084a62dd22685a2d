"""Where work runs: a LocalCluster or SLURM cluster from the config, and ordered mapping.

:func:`cluster` starts one from ``sfrdask.cluster`` in dask.config: a LocalCluster, or a
dask-jobqueue SLURMCluster whose workers are SLURM jobs, with TLS on by default. Stages receive
it explicitly, as a :class:`sfrdask.runtime.Runtime`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dask
from distributed import Client, LocalCluster, Nanny, WorkerPlugin

from sfrdask import config
from sfrdask.errors import SfrdaskError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def cluster(kind: str | None = None, **overrides: Any) -> Iterator[Client | None]:
    """Connect to a cluster described by ``sfrdask.cluster`` (``local``, ``slurm``, ``threads`` or
    ``synchronous``); ``overrides`` replace settings of that kind (e.g. ``n_workers=4``, ``jobs=8``).

    ``local`` starts a LocalCluster of single-threaded worker processes (h5py and sep hold the GIL);
    ``slurm`` submits worker jobs through dask-jobqueue (see :func:`slurm_options`). Both print the
    dashboard link. ``threads`` and ``synchronous`` use Dask's in-process schedulers (no client).
    The whole ``sfrdask`` configuration is validated first (unknown keys, wrong types).
    """
    config.validate()
    kind = kind or config.get("cluster.kind")
    if kind == "slurm":
        bind = str(config.get("cluster.slurm.dashboard-address")).rsplit(":", 1)[0]
        with (
            dask.config.set(distributed_timeouts() | _dashboard_link_on(bind)),
            _quiet_after_an_error() as failed,
            _slurm_client(**overrides) as client,
        ):
            try:
                yield client
            except BaseException:
                failed()
                raise
    elif kind == "local":
        opts = {k.replace("-", "_"): v for k, v in config.get("cluster.local").items()}
        opts.update(overrides)
        with (
            dask.config.set(distributed_timeouts()),
            _quiet_after_an_error() as failed,
            _worker_environ(),
            LocalCluster(processes=True, worker_class=_PatientNanny, **opts) as lc,
            Client(lc) as client,
        ):
            client.register_plugin(ProfileHeadroom())
            log.info("Dask dashboard: %s", client.dashboard_link)
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            try:
                yield client
            except BaseException:
                failed()
                _quiet_workers(client)
                raise
    elif "://" in str(kind):  # an existing scheduler (e.g. one a SLURMRunner or a colleague started)
        timeout = float(config.get("cluster.connect-timeout"))
        try:
            with dask.config.set(distributed_timeouts()):  # the client's own side of the connections
                client = Client(kind, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as e:
            raise SfrdaskError(
                f"could not reach the Dask scheduler at {kind} within {timeout:g} s "
                f"(sfrdask.cluster.connect-timeout): {type(e).__name__}: {e}"
            ) from None
        with client:
            _announce(client, kind)
            yield client
    elif kind in ("threads", "synchronous"):
        with dask.config.set(scheduler=kind):
            yield None
    else:
        raise ValueError(
            f"unknown cluster kind {kind!r}: expected local, slurm, threads, synchronous "
            "or a scheduler address"
        )


TIMEOUT_KEYS = {
    "connect": "distributed.comm.timeouts.connect",
    "tcp": "distributed.comm.timeouts.tcp",
    "worker-ttl": "distributed.scheduler.worker-ttl",
}


def distributed_timeouts() -> dict[str, str]:
    """Dask's settings for ``sfrdask.cluster.timeouts``: scheduler, client and LocalCluster workers
    get them through dask.config, SLURM worker jobs as ``DASK_*`` variables (:func:`slurm_options`)."""
    t = config.get("cluster.timeouts")
    return {TIMEOUT_KEYS[k]: str(v) for k, v in t.items() if v is not None}


def _silence_dask_logs() -> None:
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _quiet_workers(client: Client) -> None:
    """After a failed stage, the workers' own loggers too: torn down mid-computation, a worker's
    heartbeat to the closing scheduler would print a connection traceback under the error line."""

    def run() -> None:
        with contextlib.suppress(Exception):
            client.run(_silence_dask_logs, on_error="ignore")

    t = threading.Thread(target=run, daemon=True)  # a hung worker must not hold the error back
    t.start()
    t.join(timeout=5)


@contextlib.contextmanager
def _quiet_after_an_error() -> Iterator[Callable[[], None]]:
    """Yield a switch that silences Dask's loggers until this block ends. A stage that failed is
    reported in one line; tearing its cluster down mid-computation then makes Dask log connection
    errors with tracebacks (a batched send to a closing worker, a cancelled heartbeat), which tell
    the user nothing and bury that line."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    saved = [lg.level for lg in loggers]

    def failed() -> None:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)

    try:
        yield failed
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


class _PatientNanny(Nanny):
    """A LocalCluster nanny that gives its worker 30 s to exit when the cluster closes. Dask's 5 s
    (4 s of waiting) is too short for a worker that has imported torch on a busy 2-core machine:
    the nanny then kills it and logs "Worker process still alive after 4.0 seconds, killing" at
    the end of every normal run."""

    async def close(self, timeout: float = 30, reason: str = "nanny-close") -> Any:
        return await super().close(timeout=timeout, reason=reason)


def slurm_options(**overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(SLURMCluster keyword arguments, sfrdask's own settings)`` from ``sfrdask.cluster.slurm``.

    The worker environment (``cluster.worker-env``) and the timeouts (``cluster.timeouts``) are
    exported in the job script; with
    ``security`` the scheduler, workers and client speak TLS with temporary credentials written
    (mode 0600) under ``shared-temp-directory``, which must be visible to the worker nodes.
    """
    cf = config.get("cluster.slurm")
    cf.update({k.replace("_", "-"): v for k, v in overrides.items()})
    own = {
        k: cf.pop(k) for k in ("jobs", "adapt", "start-timeout", "dashboard-address", "shared-temp-directory")
    }
    kwargs = {k.replace("-", "_"): v for k, v in cf.items() if v is not None}
    env = {
        k: v for k, v in config.get("cluster.worker-env").items() if v is not None
    }  # None: LocalCluster only
    env |= {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): f'"{v}"'
        for key, v in distributed_timeouts().items()
    }
    # a worker shut down while a connection is half open (the client leaving, the scheduler
    # closing before the worker job's SIGTERM is handled) logs a traceback that says nothing about
    # the run and reads as a failure in the worker's .err: tornado's failed TLS handshake at ERROR,
    # Dask's "Batched Comm Closed" at INFO. So tornado's callback errors are logged at CRITICAL
    # only and the batched stream's INFO lines not at all; its real errors are WARNING and above
    # (Dask's "logging" setting, merged into its defaults)
    quiet = {"tornado.application": "critical", "distributed.batched": "warning"}
    env.setdefault("DASK_LOGGING", f'"{quiet}"')
    kwargs["job_script_prologue"] = [*(f"export {k}={v}" for k, v in env.items()), *cf["job-script-prologue"]]
    kwargs["scheduler_options"] = {"dashboard_address": own["dashboard-address"]}
    kwargs.setdefault("python", sys.executable)
    if cf["security"]:
        tls = Path(os.path.expandvars(own["shared-temp-directory"])).expanduser()
        tls.mkdir(parents=True, exist_ok=True, mode=0o700)
        kwargs["shared_temp_directory"] = str(tls)
    return kwargs, own


@contextlib.contextmanager
def _slurm_client(**overrides: Any) -> Iterator[Client]:
    """A SLURMCluster scaled (or adapting) as configured, and a client connected to it."""
    if shutil.which("sbatch") is None:
        raise SfrdaskError(
            "cluster kind 'slurm' needs SLURM's sbatch on PATH and this machine has none: run on a "
            "login node of the cluster, use kind 'local', or start a one-node SLURM with "
            "deploy/local/slurm.sh start"
        )
    from dask_jobqueue import SLURMCluster

    kwargs, own = slurm_options(**overrides)
    with SLURMCluster(**kwargs) as sc, Client(sc) as client:
        preflight(sc.job_script())
        adapt = own["adapt"]
        if adapt:
            sc.adapt(minimum_jobs=int(adapt["minimum-jobs"]), maximum_jobs=int(adapt["maximum-jobs"]))
        else:
            sc.scale(jobs=int(own["jobs"]))
        client.register_plugin(ProfileHeadroom())
        _announce(client, sc.scheduler_address)
        try:
            client.wait_for_workers(1, timeout=float(own["start-timeout"]))
        except TimeoutError:
            raise SfrdaskError(
                f"no SLURM worker job started within {own['start-timeout']} s (sfrdask.cluster.slurm."
                f"start-timeout); check `squeue --me` and the job logs ({kwargs.get('log_directory', '.')})"
            ) from None
        yield client


def preflight(job_script: str) -> None:
    """``sbatch --test-only`` on the worker job script: a job SLURM would refuse (a GPU request on
    a cluster without GPUs, a partition or account that does not exist, too much memory) fails the
    run here, within seconds and in sbatch's own words, instead of after the start timeout."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "dask-worker.sh"
        script.write_text(job_script)
        r = subprocess.run(
            ["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=120
        )
    if r.returncode != 0:
        lines = [x.strip() for x in r.stderr.splitlines() if x.strip()] or [f"exit status {r.returncode}"]
        said = next((x for x in lines if "error" in x.lower()), lines[-1])
        raise SfrdaskError(
            f"SLURM refuses the worker job: {said} (sbatch --test-only); check sfrdask.cluster.slurm: queue, "
            "account, cores, memory, walltime and job-extra-directives (e.g. --gres=gpu:1 on a cluster "
            "without GPUs)"
        )


class ProfileHeadroom(WorkerPlugin):
    """Recursion headroom in every worker process for Dask's own profile trees. A worker answers
    the dashboard's and the performance report's profile requests with a tree of nested dicts as
    deep as the stacks it sampled; a distributed training's stacks (torch, gloo, the training
    loop) are deep enough that estimating that reply's size overran Python's default limit of 1,000
    frames, and each worker logged "Sizeof calculation for object of type 'dict' failed". 4,000
    frames leave room for it (a few MB of C stack, within the 8 MB of a process's main thread)."""

    name = "sfrdask-profile-headroom"

    def setup(self, worker: Any) -> None:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 4000))


def open_cluster(kind: str | None = None, **overrides: Any) -> Client | None:
    """:func:`cluster` for a notebook, where a ``with`` block cannot span cells: the client of a
    cluster that stays up until ``client.close()``, which closes the workers (and their SLURM
    jobs) too, as does the end of the Python process. ``None`` for ``threads`` / ``synchronous``."""
    stack = contextlib.ExitStack()
    client = stack.enter_context(cluster(kind, **overrides))
    if client is None:
        stack.close()
        return None
    close_client, closing = client.close, []

    def close(*args: Any, **kwargs: Any) -> Any:
        if closing:  # called again by Client.__exit__ as the stack unwinds: the client's own close
            return close_client(*args, **kwargs)
        closing.append(True)
        atexit.unregister(stack.close)
        stack.close()  # leaves the cluster's context as a ``with`` block would, config restored

    client.close = close  # type: ignore[method-assign]
    atexit.register(stack.close)
    return client


def _dashboard_link_on(host: str) -> dict[str, str]:
    """``client.dashboard_link`` as the dashboard really listens: on the host it is bound to (the
    loopback by default), not on the scheduler's cluster-network address that Dask would name."""
    if host in ("", "0.0.0.0", "*"):
        return {}
    return {"distributed.dashboard.link": f"{{scheme}}://{host}:{{port}}/status"}


def tunnel_hint(link: str) -> str:
    """How to open the dashboard at ``link`` from a laptop: an SSH tunnel to this (login) node."""
    port = urlparse(link).port
    return (
        f"from your laptop: ssh -N -L {port}:localhost:{port} {socket.gethostname()}   "
        f"then open http://localhost:{port}/status"
    )


def _announce(client: Client, scheduler: str) -> None:
    """Print the dashboard link and how to reach it from a laptop (an SSH tunnel)."""
    link = client.dashboard_link
    print(f"Dask scheduler: {scheduler}\nDask dashboard: {link}\n  {tunnel_hint(link)}", flush=True)
    log.info("Dask dashboard: %s", link)


@contextlib.contextmanager
def _worker_environ() -> Iterator[None]:
    """Give new worker processes ``sfrdask.cluster.worker-env`` from the moment they start.

    Variables such as MALLOC_TRIM_THRESHOLD_ act only if set before a process starts, so they go
    through the nanny's pre-spawn environment; and because Dask lets a variable already in this
    process's environment win over its config (a previous cluster leaves one there), they are also
    set here for the cluster's lifetime and restored afterwards. A value of ``None`` leaves the
    variable unset in the workers (e.g. glibc's own dynamic malloc thresholds).
    """
    env = {k: None if v is None else str(v) for k, v in config.get("cluster.worker-env").items()}
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
