"""Progress of long work: plain lines, no carriage returns, when the output is not a terminal."""

from __future__ import annotations

import io

import dask

from sfrdask.progress import Progress, compute_tasks


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
