"""The trainings of a study as independent Dask tasks: longest first, retried on failure, each
finished one recorded at once (and only once) by the client."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from distributed import as_completed

from sfrdask.errors import SfrdaskError
from sfrdask.resolution.grid import Training
from sfrdask.resolution.record import Record
from sfrdask.resolution.task import run_training


def train_all(
    client: Any,
    store: Path,
    todo: list[Training],
    record: Record,
    runs: Path,
    settings: dict[str, Any],
    finish: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row,
    retries: int = 2,
    resources: dict[str, float] | None = None,
    tuned: dict[str, dict[str, Any]] | None = None,
) -> list[Training]:
    """Train every one of ``todo`` (in that order of priority) and add its row, passed through
    ``finish``, to ``record`` as soon as it is done. On a Dask ``client`` each training is one task
    (``retries`` more tries, on another worker when one died; ``resources`` such as ``{"GPU": 1}``
    place it); without one they run here, one after another. ``tuned``: each cell's chosen settings
    (:mod:`sfrdask.resolution.tune`). Returns the trainings that failed every try; a
    KeyboardInterrupt cancels what is queued and leaves the record as it stands."""
    tuned = tuned or {}
    failed: list[Training] = []
    n, t0 = len(todo), time.perf_counter()

    def done(k: int, t: Training, row: dict[str, Any]) -> None:
        record.add(finish(row))
        print(
            f"study: {k}/{n} trainings ({time.perf_counter() - t0:.0f} s) {t.key}: R^2 {row['r2']:.3f}, "
            f"{_stopped(row)}, {row['train_seconds']:.0f} s on {row['worker']}",
            file=sys.stderr,
            flush=True,
        )

    def failed_every_try(t: Training, e: Exception) -> None:  # the others go on
        print(f"study: {t.key} failed after {retries + 1} tries: {type(e).__name__}: {e}", file=sys.stderr,
              flush=True)  # fmt: skip
        failed.append(t)

    def args(t: Training) -> tuple[Any, ...]:
        return str(store), t, str(runs), settings, tuned.get(t.tuning_cell)

    fan_out(
        client,
        run_training,
        todo,
        args,
        lambda t: f"study-{t.key}",
        done,
        failed_every_try,
        retries,
        resources,
    )
    return failed


T = TypeVar("T")


def fan_out(
    client: Any,
    fn: Callable[..., Any],
    todo: list[T],
    args: Callable[[T], tuple[Any, ...]],
    key: Callable[[T], str],
    done: Callable[[int, T, Any], None],
    failed: Callable[[T, Exception], None],
    retries: int = 2,
    resources: dict[str, float] | None = None,
) -> None:
    """``fn(*args(t))`` for every ``t`` of ``todo``, in that order of priority: on a Dask
    ``client`` one task each (``retries`` more tries, on another worker when one died;
    ``resources`` place it), without one here, one after another. ``done(k, t, result)`` as each
    finishes (k counts them), ``failed(t, error)`` for a task that failed every try; a
    KeyboardInterrupt cancels what is queued. The trainings and the tuning trials both go this way."""
    n = len(todo)
    if client is None:
        for k, t in enumerate(todo, 1):
            done(k, t, fn(*args(t)))
        return
    futures = {
        client.submit(fn, *args(t), key=f"{key(t)}-{i}-{time.time_ns()}", priority=n - i, retries=retries,
                      resources=resources, pure=False): t
        for i, t in enumerate(todo)
    }  # fmt: skip
    try:
        for k, fut in enumerate(as_completed(list(futures), loop=client.loop), 1):
            t = futures[fut]
            try:
                result = fut.result()
            except Exception as e:
                failed(t, e)
                continue
            done(k, t, result)
    except BaseException:
        client.cancel(list(futures))
        raise


def _stopped(row: dict[str, Any]) -> str:
    if row.get("stop", "fit") == "fit":
        return "fitted"
    return f"stopped by {row['stop']} after {row['epochs']} epochs (best {row['best_epoch']})"


def check_failed(failed: list[Training]) -> None:
    if failed:
        raise SfrdaskError(
            f"{len(failed)} training(s) failed every try: {', '.join(t.key for t in failed)}; the others are "
            "recorded, and running the study again trains only what is missing"
        )
