"""The filter stage: which objects later stages use (FLAG, class, bad pixels), and their split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, required, setting


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store written by ingest", positional=True)
    flag: int = setting("preprocess.flag", "keep catalogue rows with this FLAG")
    max_bad_fraction: float = setting("preprocess.max-bad-fraction", "drop objects with more NaN than this")
    classes: tuple[str, ...] = setting("preprocess.classes", "comma-separated classes kept, e.g. GALAXY,QSO")


@dataclass(frozen=True)
class Result:
    store: Path
    counts: dict[str, Any]


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.preprocessing import select_objects

    with rt.active():
        sel = select_objects(
            p.store, flag=p.flag, max_bad_fraction=p.max_bad_fraction, classes=list(p.classes)
        )
    return Result(p.store, json.loads(sel.attrs["counts"]))


def report(r: Result) -> list[str]:
    return [f"selection written to {r.store}/selection: {r.counts}"]


STAGE = Stage(Params, run, report)
