"""Distributed data-parallel training with one torch rank per Dask worker.

:func:`train_ddp` picks ``ranks`` workers of the connected cluster (a LocalCluster or a
SLURMCluster: the same code), finds a free port on the first one for the rendezvous
(``MASTER_ADDR``/``MASTER_PORT``), and submits one task per worker, pinned with ``workers=``.
Each task joins a ``torch.distributed`` group (gloo on CPU, nccl on GPU) and runs
:func:`sfrdask.training.loop.fit_net`; rank 0 returns the trained model's results.

The client never waits blindly: it watches the tasks, the workers and a heartbeat every rank sends
after each epoch, and raises :class:`DDPError` naming the rank as soon as a rank fails, its
worker leaves the cluster, a rank stays silent longer than ``train.ddp.heartbeat-timeout``, or the
whole run exceeds ``train.ddp.timeout``. Surviving ranks give up on a dead peer after
``train.ddp.collective-timeout`` (torch.distributed's own timeout), which frees their workers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import dask
import torch
import torch.distributed as dist
from distributed import Client, get_worker

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.progress import Progress
from sfrdask.training.loop import RankDone, fit_net
from sfrdask.training.result import FitResult
from sfrdask.training.spec import TrainSpec


class DDPError(SfrdaskError, RuntimeError):
    """A distributed training that could not finish: which rank, on which worker, and why."""


def _free_port() -> int:
    """Runs on the rank-0 worker (``client.run``): a TCP port free there."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _rank_main(
    spec: TrainSpec, rank: int, world: int, addr: str, port: int, topic: str, timeout: float
) -> FitResult | RankDone:
    """One rank, inside a Dask worker: join the group, train, leave the group whatever happens."""
    worker = get_worker()
    spec.threads = spec.threads or worker.state.nthreads
    backend = "nccl" if spec.device != "cpu" and torch.cuda.is_available() else "gloo"
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port))
    dist.init_process_group(
        backend,
        init_method=f"tcp://{addr}:{port}",
        rank=rank,
        world_size=world,
        timeout=dt.timedelta(seconds=timeout),
    )

    def report(event: dict[str, Any]) -> None:
        worker.log_event(topic, event)

    try:
        report({"rank": rank, "phase": "started", "epoch": 0})
        # every rank reads its data itself: a dask computation sent back to the cluster from here
        # would wait for a worker thread that the other ranks are holding (a deadlock)
        with dask.config.set(scheduler="synchronous"):
            return fit_net(spec, rank=rank, world=world, report=report)
    finally:
        dist.destroy_process_group()


def _wait_any(futures: list[Any], timeout: float) -> None:
    """Return when one of ``futures`` is done, or after ``timeout`` s. (``distributed.wait`` would
    look up Dask's default client; these futures belong to the client passed in.)"""
    end = time.monotonic() + timeout
    while futures and time.monotonic() < end and not any(f.done() for f in futures):
        time.sleep(0.05)


def pick_workers(client: Client, ranks: int) -> list[str]:
    """``ranks`` worker addresses (sorted, so reruns use the same ones), or a clear error."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if len(workers) < ranks:
        raise DDPError(
            f"{ranks} ranks need {ranks} Dask workers, the cluster has {len(workers)}; "
            "scale the cluster or ask for fewer ranks"
        )
    return workers[:ranks]


def train_ddp(spec: TrainSpec, ranks: int, client: Client, poll: float = 1.0) -> FitResult:
    """Train on ``ranks`` workers; returns rank 0's result plus every rank's weight digest."""
    limit = {
        k: float(config.get(f"train.ddp.{k}")) for k in ("timeout", "heartbeat-timeout", "collective-timeout")
    }
    workers = pick_workers(client, ranks)
    addr = urlparse(workers[0]).hostname or "127.0.0.1"  # rank 0's host, as the other workers reach it
    port = client.run(_free_port, workers=[workers[0]])[workers[0]]
    topic = f"sfrdask-ddp-{uuid.uuid4().hex[:8]}"
    remote = dataclasses.replace(spec, progress=False)  # the client shows progress, from the heartbeats
    futures = [
        client.submit(
            _rank_main,
            remote,
            r,
            ranks,
            addr,
            port,
            topic,
            limit["collective-timeout"],
            workers=[w],
            allow_other_workers=False,
            pure=False,
            key=f"{topic}-rank-{r}",
        )
        for r, w in enumerate(workers)
    ]
    rank_of = {f.key: r for r, f in enumerate(futures)}
    start = time.monotonic()
    last_seen = dict.fromkeys(range(ranks), start)
    bar = Progress(None, f"{spec.model} on {ranks} ranks", enabled=spec.progress, unit="epochs")
    seen_events = 0
    try:
        while True:
            _wait_any([f for f in futures if not f.done()], poll)
            now = time.monotonic()
            done = [f for f in futures if f.done()]
            for f in done:
                if f.status == "error":
                    r = rank_of[f.key]
                    raise DDPError(f"rank {r} (worker {workers[r]}) failed: {f.exception()!r}")
            if len(done) == ranks:
                break
            events = client.get_events(topic)
            for _, ev in events[seen_events:]:
                last_seen[ev["rank"]] = now
                if ev["rank"] == 0 and ev.get("phase") != "started":
                    bar.update()
                    bar.set_postfix(phase=ev["phase"], val=f"{ev['val_loss']:.3f}")
            seen_events = len(events)
            alive = set(client.scheduler_info(n_workers=-1)["workers"])
            for r, w in enumerate(workers):
                if w not in alive and not futures[r].done():
                    raise DDPError(
                        f"rank {r}: its worker {w} left the cluster (killed or lost) during training"
                    )
                if now - last_seen[r] > limit["heartbeat-timeout"] and not futures[r].done():
                    raise DDPError(
                        f"rank {r} (worker {workers[r]}) sent no heartbeat for "
                        f"{limit['heartbeat-timeout']:g} s: hung"
                    )
            if now - start > limit["timeout"]:
                raise DDPError(f"distributed training exceeded train.ddp.timeout = {limit['timeout']:g} s")
        results = [f.result() for f in futures]
    except BaseException:
        client.cancel(futures, force=True)
        raise
    finally:
        bar.close()
    out = results[0]
    digests = [r.details["digest"] if isinstance(r, FitResult) else r.digest for r in results]
    out.details.update(rank_digests=digests, workers=workers)
    return out
