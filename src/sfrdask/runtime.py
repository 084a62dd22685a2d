"""Where a stage's work runs, handed to it explicitly: a Dask Client, or an in-process scheduler.

Stages receive a :class:`Runtime` instead of looking up a global client, so the cluster that
runs a stage is the one its caller chose: ``sfrdask ... --cluster local|slurm|threads|synchronous``,
the run file's ``cluster:`` section, or a Client given to the Python API.

>>> from sfrdask.runtime import Runtime
>>> rt = Runtime.of("synchronous")
>>> rt.client is None, rt.scheduler
(True, 'synchronous')
>>> import dask.array as da
>>> with rt.active():
...     int(da.ones(10, chunks=5).sum().compute())
10
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask

IN_PROCESS = ("threads", "synchronous")


@dataclass(frozen=True)
class Runtime:
    """A Dask ``client`` (distributed), or ``None`` with an in-process ``scheduler``."""

    client: Any = None
    scheduler: str = "threads"

    @classmethod
    def of(cls, where: Any = None) -> Runtime:
        """A Runtime from what a Python caller passes: a Client, ``"threads"``, ``"synchronous"``,
        a Runtime, or ``None`` (Dask's default client if one is connected, else threads: what
        ``dask.compute`` itself would use)."""
        if isinstance(where, Runtime):
            return where
        if where is None:
            from distributed import default_client

            try:
                return cls(default_client(), "distributed")
            except ValueError:
                return cls(None, "threads")
        if isinstance(where, str):
            if where not in IN_PROCESS:
                raise ValueError(f"expected a Dask Client, 'threads' or 'synchronous', got {where!r}")
            return cls(None, where)
        if not hasattr(where, "submit"):
            raise TypeError(f"expected a Dask Client, 'threads' or 'synchronous', got {type(where).__name__}")
        return cls(where, "distributed")

    @contextlib.contextmanager
    def active(self) -> Iterator[Runtime]:
        """Make every ``dask.compute`` inside use this runtime, whatever else is connected."""
        with dask.config.set(scheduler=self.client if self.client is not None else self.scheduler):
            yield self

    @property
    def workers(self) -> int:
        """Worker processes (threads of this process for an in-process scheduler)."""
        if self.client is None:
            return 1
        return len(self.client.scheduler_info(n_workers=-1)["workers"])


@contextlib.contextmanager
def open_runtime(kind: str | None = None, **overrides: Any) -> Iterator[Runtime]:
    """Start (or connect to) the cluster ``kind`` names (``sfrdask.cluster.kind`` by default)
    and hand it out as a Runtime; closed on exit. See :func:`sfrdask.clusters.cluster`."""
    from sfrdask import config
    from sfrdask.clusters import cluster

    kind = kind or config.get("cluster.kind")
    with cluster(kind, **overrides) as client:
        rt = Runtime(client, "distributed") if client is not None else Runtime(None, kind)
        with rt.active():
            yield rt
