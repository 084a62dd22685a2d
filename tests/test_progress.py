"""Progress of long work: plain lines, no carriage returns, when the output is not a terminal."""

from __future__ import annotations

import io
import time
from pathlib import Path

import dask

from sfrdask.progress import Progress, cancel_and_wait, compute_tasks


def test_log_lines_every_tenth_and_no_carriage_returns():
    out = io.StringIO()
    p = Progress(40, "predict", stream=out)
    for _ in range(40):
        p.update()
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10 and lines[-1].startswith("predict: 40/40 tasks (100%")


def test_compute_tasks_in_order_without_a_client():
    tasks = [dask.delayed(lambda i: i * i)(i) for i in range(25)]
    with dask.config.set(scheduler="threads"):
        assert compute_tasks(tasks, None, "squares") == [i * i for i in range(25)]


def _write_late(started: str, out: str, seconds: float) -> None:
    Path(started).touch()
    time.sleep(seconds)
    Path(out).write_text("written after the cancel")


def test_a_cancel_returns_only_when_the_running_task_has_stopped(client, tmp_path):
    """A task already running when its computation is cancelled (Ctrl-C in an ingest) runs on and
    writes; the caller removes the unfinished output after the cancel, so the cancel must outlast
    the write. ``client.cancel`` alone returns at once, before it."""
    started, out = tmp_path / "started", tmp_path / "chunk"
    future = client.submit(_write_late, str(started), str(out), 3.0, pure=False)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    t0 = time.monotonic()
    cancel_and_wait(client, [future])
    assert out.exists(), "cancel_and_wait returned while the task was still running"
    assert time.monotonic() - t0 < 30
    assert future.cancelled()
