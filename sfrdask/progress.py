"""Run a list of Dask tasks and say how far along they are, fit for a terminal and for a log file.

On a terminal, a tqdm bar; otherwise (a log file, a batch job's output) a plain line at about
every 10% of the tasks, so logs hold no carriage-return updates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import dask


class Progress:
    """Count finished tasks; draw a bar on a terminal, print a line per ~10% elsewhere."""

    def __init__(self, total: int, desc: str, stream: Any = None):
        self.total, self.desc, self.done = total, desc, 0
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._next = 0.1
        self.bar = None
        if self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="task", file=self.stream)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        frac = self.done / max(self.total, 1)
        if frac >= self._next or self.done == self.total:
            dt = time.perf_counter() - self.t0
            print(
                f"{self.desc}: {self.done}/{self.total} tasks ({frac:.0%}, {dt:.1f} s)",
                file=self.stream,
                flush=True,
            )
            while self._next <= frac:
                self._next += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def compute_tasks(tasks: Sequence[Any], client: Any | None, desc: str) -> list[Any]:
    """Compute dask ``tasks`` on ``client`` (or Dask's configured in-process scheduler when None),
    in order, showing progress. Results come back as they finish; the first error is raised."""
    prog = Progress(len(tasks), desc)
    try:
        if client is not None:
            from distributed import as_completed

            futures = client.compute(list(tasks))
            for _ in as_completed(futures):
                prog.update()
            return client.gather(futures)
        out = []
        step = max(1, len(tasks) // 20)
        for a in range(0, len(tasks), step):  # groups keep the in-process scheduler's threads busy
            out.extend(dask.compute(*tasks[a : a + step]))
            prog.update(len(tasks[a : a + step]))
        return out
    finally:
        prog.close()
