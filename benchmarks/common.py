"""Measurement helpers shared by the benchmark scripts: peak memory, stage timing, machine, output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from sfrdask import tables
from sfrdask.io.atomic import write_text


class PeakMemory:
    """Peak resident memory of this process and all its children (the Dask workers), sampled."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def measured(record: dict[str, Any], name: str, objects: int | None = None) -> Iterator[None]:
    """Time a stage and sample its peak memory into ``record[name]`` (seconds, peak_mb, objects/s)."""
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
    row: dict[str, Any] = {"seconds": round(dt, 3), "peak_mb": round(mem.peak / 2**20)}
    if objects is not None:
        row["objects"] = int(objects)
        row["objects_per_s"] = round(objects / max(dt, 1e-9), 1)
    record[name] = row


def drop_page_cache() -> bool:
    """Empty the OS page cache so reads come from disk, as they do for a cube larger than RAM
    (needs root on Linux; returns False where not allowed)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def read_cold(script: str, *args: str) -> dict[str, Any]:
    """Run ``python -c script args`` in a fresh process after emptying the page cache; the JSON it
    prints, plus whether the cache could be emptied (``page_cache_dropped``)."""
    cold = drop_page_cache()
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout), "page_cache_dropped": cold}


def machine() -> str:
    """One line describing where the figures were measured."""
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GB RAM, Python {platform.python_version()}"
    )


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON through a temporary file, so a killed run leaves no half-written result."""
    return write_text(path, json.dumps(obj, indent=2, default=float))


def markdown(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A markdown table of ``rows`` (floats to 3 significant figures, missing values as '-')."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    table = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns, dtype=object)
    return tables.markdown(table, formats={c: fmt for c in columns})
