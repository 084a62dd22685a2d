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
    store: Path = required("zarr store written by ingest", positional=True, input=True)
    flag: int = setting("preprocess.flag", "keep catalogue rows with this FLAG")
    max_bad_fraction: float = setting("preprocess.max-bad-fraction", "drop objects with more NaN than this")
    classes: tuple[str, ...] = setting("preprocess.classes", "comma-separated classes kept, e.g. GALAXY,QSO")
    compact: bool = setting(
        "preprocess.compact", "copy the selected objects contiguously, so later stages read only them"
    )


@dataclass(frozen=True)
class Result:
    store: Path
    counts: dict[str, Any]
    compact: tuple[str, ...] = ()  # groups holding the selected objects' data


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.preprocessing import select_objects, write_compact

    with rt.active():
        sel = select_objects(
            p.store, flag=p.flag, max_bad_fraction=p.max_bad_fraction, classes=list(p.classes)
        )
        compact = tuple(write_compact(p.store)) if p.compact else ()
    return Result(p.store, json.loads(sel.attrs["counts"]), compact)


def report(r: Result) -> list[str]:
    lines = [f"selection written to {r.store}/selection: {r.counts}"]
    if r.compact:
        lines.append(f"selected objects copied contiguously to {', '.join(r.compact)}")
    return lines


STAGE = Stage(Params, run, report)
