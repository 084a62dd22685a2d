"""Where work runs: the active Dask client, a LocalCluster from the config, and ordered mapping.

The SLURM side (dask-jobqueue, TLS) arrives with the cluster issue; everything here already runs
unchanged on any ``distributed`` cluster the user is connected to.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster, get_client
from tqdm.auto import tqdm

from sfrdask import config

log = logging.getLogger(__name__)


def active_client() -> Client | None:
    """The distributed Client in use, if any."""
    try:
        return get_client()
    except ValueError:
        return None


@contextlib.contextmanager
def cluster(kind: str | None = None, **overrides: Any) -> Iterator[Client | None]:
    """Connect to a cluster described by ``sfrdask.cluster`` (``local``, ``threads`` or ``synchronous``).

    ``local`` starts a LocalCluster of single-threaded worker processes (h5py and sep hold the GIL)
    and logs the dashboard link; the others use Dask's in-process schedulers (no client).
    """
    kind = kind or config.get("cluster.kind")
    if kind == "local":
        opts = {k.replace("-", "_"): v for k, v in config.get("cluster.local").items()}
        opts.update(overrides)
        with (
            _worker_environ(),
            LocalCluster(processes=True, **opts) as lc,
            Client(lc) as client,
        ):
            log.info("Dask dashboard: %s", client.dashboard_link)
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            yield client
    elif kind in ("threads", "synchronous"):
        with dask.config.set(scheduler=kind):
            yield None
    else:
        raise ValueError(f"unknown cluster kind {kind!r}: expected local, threads or synchronous")


@contextlib.contextmanager
def _worker_environ() -> Iterator[None]:
    """Give new worker processes ``sfrdask.cluster.worker-env`` from the moment they start.

    Variables such as MALLOC_TRIM_THRESHOLD_ act only if set before a process starts, so they go
    through the nanny's pre-spawn environment; and because Dask lets a variable already in this
    process's environment win over its config (a previous cluster leaves one there), they are also
    set here for the cluster's lifetime and restored afterwards.
    """
    env = {k: str(v) for k, v in config.get("cluster.worker-env").items()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def map_ordered(
    fn: Callable[..., Any],
    items: Iterable[Any],
    total: int | None = None,
    window: int | None = None,
    desc: str = "",
    progress: bool = True,
) -> Iterator[Any]:
    """``fn(item)`` for every item on the cluster, yielded in input order, with at most ``window``
    tasks in flight (bounded memory); a tqdm bar shows progress."""
    client = active_client()
    items = iter(items)
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="task")
    try:
        if client is None:
            window = window or 4
            while batch := [x for _, x in zip(range(window), items, strict=False)]:
                for r in dask.compute(*[dask.delayed(fn, pure=False)(x) for x in batch]):
                    bar.update()
                    yield r
            return
        window = window or 2 * max(1, sum(client.nthreads().values()))
        pending: deque = deque()
        for x in items:
            pending.append(client.submit(fn, x, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
                bar.update()
        while pending:
            yield pending.popleft().result()
            bar.update()
    finally:
        bar.close()
