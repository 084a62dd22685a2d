"""Run a list of Dask tasks and say how far along they are, fit for a terminal and for a log file.

On a terminal, a tqdm bar; otherwise (a log file, a batch job's output) a plain line at about
every 10% of the tasks, so logs hold no carriage-return updates.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dask

if TYPE_CHECKING:
    from distributed import Client


class Progress:
    """Count finished steps; draw a bar on a terminal, print a line per ~10% elsewhere.

    ``total=None`` (an open-ended count, e.g. epochs until early stopping) prints every step."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        stream: Any = None,
        enabled: bool = True,
        initial: int = 0,
        unit: str = "tasks",
    ):
        self.total, self.desc, self.done, self.enabled, self.unit = total, desc, initial, enabled, unit
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._next = 0.1
        self.postfix = ""
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm.auto import tqdm  # tqdm: only when a bar is drawn on a terminal

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream)

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the count (e.g. the losses of the last epoch)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        frac = self.done / self.total if self.total else 1.0
        if self.total is None or frac >= self._next or self.done == self.total:
            dt = time.perf_counter() - self.t0
            of = (
                f"{self.done}/{self.total} {self.unit} ({frac:.0%}, "
                if self.total
                else f"{self.done} {self.unit} ("
            )
            extra = f"; {self.postfix}" if self.postfix else ""
            print(f"{self.desc}: {of}{dt:.1f} s{extra})", file=self.stream, flush=True)
            while self._next <= frac:
                self._next += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def track(
    items: Iterable[Any], total: int, desc: str, enabled: bool = True, unit: str = "tasks"
) -> Iterator[Any]:
    """``items``, counting each one as a step of a :class:`Progress`."""
    prog = Progress(total, desc, enabled=enabled, unit=unit)
    try:
        for x in items:
            yield x
            prog.update()
    finally:
        prog.close()


def compute_tasks(tasks: Sequence[Any], client: Any | None, desc: str, progress: bool = True) -> list[Any]:
    """Compute dask ``tasks`` on ``client`` (or Dask's configured in-process scheduler when None),
    in order, showing progress. Results come back as they finish; the first error is raised."""
    prog = Progress(len(tasks), desc, enabled=progress)
    try:
        if client is not None:
            # distributed: only with a cluster (synth and ingest also run on threads)
            from distributed import as_completed

            futures = client.compute(list(tasks))
            try:
                for _ in as_completed(futures, loop=client.loop):  # this client, not a default one
                    prog.update()
                return client.gather(futures)
            except BaseException:  # an error, Ctrl-C, SIGTERM: queued tasks stop before the caller
                cancel_and_wait(client, futures)  # cleans up what they were writing
                raise
        out = []
        step = max(1, len(tasks) // 20)
        for a in range(0, len(tasks), step):  # groups keep the in-process scheduler's threads busy
            out.extend(dask.compute(*tasks[a : a + step]))
            prog.update(len(tasks[a : a + step]))
        return out
    finally:
        prog.close()


CANCEL_PATIENCE = 60.0
"""Seconds :func:`cancel_and_wait` waits for the tasks that were running to stop."""


def _busy_keys(dask_worker: Any) -> list[Any]:
    """The keys a worker runs (cancelled ones too: a running task is cancelled only when it ends)
    or is about to run."""
    state = dask_worker.state
    return [ts.key for ts in (*state.all_running_tasks, *state.ready, *state.constrained)]


def cancel_and_wait(client: Client, futures: list[Any], patience: float = CANCEL_PATIENCE) -> None:
    """Cancel ``futures`` and wait until the tasks the workers were running have stopped.

    Cancelling releases what is queued, but a task already running on a worker finishes, and a
    write task then writes its chunk after the caller has removed the unfinished output (found by
    tests/io/test_atomic.py on a loaded machine). The tasks busy at the cancel are waited for, at
    most ``patience`` seconds; a worker that does not answer is not waited for."""
    client.cancel(futures)
    deadline = time.monotonic() + patience

    def busy() -> set[Any]:
        answers = client.run(_busy_keys, on_error="return")
        return {k for keys in answers.values() if isinstance(keys, list) for k in keys}

    try:
        waiting = busy()
        while waiting and time.monotonic() < deadline:
            time.sleep(0.1)
            waiting &= busy()
    except Exception:  # a cluster closing under us: nothing left to wait for
        pass


def map_ordered(
    fn: Callable[..., Any],
    items: Iterable[Any],
    client: Client | None,
    total: int | None = None,
    window: int | None = None,
    desc: str = "",
    progress: bool = True,
) -> Iterator[Any]:
    """``fn(item)`` for every item on ``client`` (``None``: Dask's configured in-process
    scheduler), yielded in input order, with at most ``window`` tasks in flight (bounded memory);
    progress as a bar on a terminal, plain lines in a log."""
    items = iter(items)
    bar = Progress(total or 0, desc, enabled=progress)
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
        try:
            for x in items:
                pending.append(client.submit(fn, x, pure=False))
                if len(pending) >= window:
                    yield pending.popleft().result()
                    bar.update()
            while pending:
                yield pending.popleft().result()
                bar.update()
        except BaseException:  # as in compute_tasks: nothing queued runs on after a failure
            cancel_and_wait(client, list(pending))
            raise
    finally:
        bar.close()
